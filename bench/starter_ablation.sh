#!/usr/bin/env bash
# Loss ablation for the starter model (docs/starter-model.md): same data, schedule, seed and precision;
# only the loss differs. Each run: ResNet34 U-Net from random weights, 32 px, 10 epochs of
# photos/train + photos/more (7,104 photos) in memory, bf16 where the CPU has it; then evaluated on
# photos/valid at 256 px. One torch thread by default (THREADS=N to change), so the run keeps a
# steady speed while the other core works. Usage: bash bench/starter_ablation.sh [RUNS_DIR]
set -euo pipefail
RUNS=${1:-runs/ablation}
D=../shared/data/photos
COMMON=(--threads ${THREADS:-1} --valid $D/valid --from none --no-pretrained --in-memory --precision auto --seed 42
        --track $D/valid --stages 32:10:64@1e-3 --render-size 128 --eval-size 256)
mkdir -p "$RUNS"
run() {  # name, extra options...
  local name=$1; shift
  colorkit train $D/train $D/more -o "$RUNS/$name" "${COMMON[@]}" "$@" > "$RUNS/$name.log" 2>&1
}
run l1 --loss l1
run l1_class --loss l1 --class-weight 0.05
run feature --loss feature
