# Sourced by the starter's bench scripts (starter_train.sh, starter_finish.sh, starter_continue.sh): one
# `colorkit train` call on photos/train + photos/more, L1 on the chroma, photos/valid tracked and evaluated
# (choosing only), photos kept in memory, bf16 where the hardware has it. Run from the repository root.
#   starter_train OUT FROM SEED STAGES [more colorkit train options]     (THREADS=N torch threads, default 1)
D=../shared/data/photos
starter_train() {
  local out=$1 from=$2 seed=$3 stages=$4
  shift 4
  colorkit train $D/train $D/more -o "$out" --from "$from" --seed "$seed" --valid $D/valid --no-pretrained \
    --threads "${THREADS:-1}" --in-memory --precision auto --track $D/valid --loss l1 --render-size 128 \
    --eval-size 256 --stages "$stages" "$@"
}
