#!/usr/bin/env bash
# One cycle of the starter's continuation (2026-12-03, docs/starter-model.md): a new one-cycle from a starter
# at a higher learning rate (48 px, up to 1e-3, 12 epochs; the earlier fine-tunes at <= 3e-4 had plateaued),
# then 64 px x 2 and 128 px x 1 to bring accuracy at the render size back. The shipped starter took three
# cycles: SEED=61 from the starter at git 1fc2226, SEED=71 from the first cycle's RUN/128a, SEED=81 from the
# second's; it is the third cycle's RUN/128a. One cycle took 74 min on one 2-core AMX machine (42 + 11 + 20)
# and 42 min on a faster one (25 + 6 + 10).
# Resumable: a step whose model folder already has metrics.json is skipped. 2 torch threads by default
# (THREADS=N to change). Each step's config.json records its stages, seed and the model it started from.
# Usage: SEED=N bash bench/starter_continue.sh RUN_DIR START_MODEL   (the three steps' seeds are N, N+1, N+2;
# default 61)
set -euo pipefail
RUN=${1:?RUN_DIR}
START=${2:?"START_MODEL: the starter to continue from"}
THREADS=${THREADS:-2}
SEED=${SEED:-61}
source "$(dirname "$0")/_starter_train.sh"
mkdir -p "$RUN"
step() {  # OUT FROM SEED STAGES: skipped once OUT has its evaluation
  [ -f "$1/metrics.json" ] || starter_train "$@"
}
step "$RUN/48" "$START" $SEED 48:12:48@5e-4..1e-3
step "$RUN/64" "$RUN/48" $((SEED + 1)) 64:2:32@1e-4..3e-4
step "$RUN/128a" "$RUN/64" $((SEED + 2)) 128:1:16@5e-5..1e-4
# then choose the decode settings on photos/valid and save them into the chosen model:
#   python bench/starter_select.py "$RUN/128a" --render-sizes 128 160 --gains 1 1.2 1.25 1.3 1.35 1.4
#   python bench/starter_select.py "$RUN/128a" --write 1 128 --write-gain 1.3   # the third cycle's choice
