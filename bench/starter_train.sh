#!/usr/bin/env bash
# The starter model's long run (docs/starter-model.md). Resumable: run it again and it continues after the
# last finished stage (MODEL/checkpoints). It continues the 10-epoch L1 run of bench/starter_ablation.sh
# (same data and seed, 32 px) and goes on at 48 and 64 px (colour is low-frequency; every sample is cheap at
# small sizes), then one epoch at 128 px; the short 220 px stage is a separate fine-tune (bench/starter_finish.sh).
# One torch thread by default (THREADS=N to change).
# Usage: bash bench/starter_train.sh [MODEL_DIR] [START_MODEL]
set -euo pipefail
OUT=${1:-runs/starter-long}
START=${2:-runs/ablation/l1}
source "$(dirname "$0")/_starter_train.sh"
starter_train "$OUT" "$START" 42 48:6:48@2e-4..4e-4,64:2:32@1e-4..3e-4,64:1:32@1e-4..2e-4,128:1:16@5e-5..1e-4
