#!/usr/bin/env bash
# The starter's continuation run (2026-12-03, docs/starter-model.md): a new one-cycle from the previous starter
# at a higher learning rate (48 px, up to 1e-3, 12 epochs; the earlier fine-tunes at <= 3e-4 had plateaued),
# then 64 px x 2 and 128 px x 1 to bring accuracy at the render size back (a second 128 px epoch, seed 64, was
# worse on photos/valid: CIEDE2000 10.78 vs 10.70 at render 160, gain 1.3, so the shipped starter is RUN/128a).
# START is the starter before this run (git show 1fc2226:colorkit/weights/starter/... ; about 42 min at
# 48 px, 11 min at 64 px, 20 min at 128 px on 2 cores with AMX).
# Resumable: a step whose model folder already has metrics.json is skipped. 2 torch threads by default
# (THREADS=N to change). Each step's config.json records its stages, seed and the model it started from.
# Usage: bash bench/starter_continue.sh RUN_DIR START_MODEL
set -euo pipefail
RUN=${1:?RUN_DIR}
START=${2:?"START_MODEL: the starter before this run (its three files at git 1fc2226)"}
THREADS=${THREADS:-2}
source "$(dirname "$0")/_starter_train.sh"
mkdir -p "$RUN"
step() {  # OUT FROM SEED STAGES: skipped once OUT has its evaluation
  [ -f "$1/metrics.json" ] || starter_train "$@"
}
step "$RUN/48" "$START" 61 48:12:48@5e-4..1e-3
step "$RUN/64" "$RUN/48" 62 64:2:32@1e-4..3e-4
step "$RUN/128a" "$RUN/64" 63 128:1:16@5e-5..1e-4
# then choose the decode settings on photos/valid and save them into the chosen model:
#   python bench/starter_select.py "$RUN/128a" --render-sizes 128 160 192 --gains 1.25 1.3 1.35 1.4
#   python bench/starter_select.py "$RUN/128a" --write 1 128 --write-gain 1.35
