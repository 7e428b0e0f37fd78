#!/usr/bin/env bash
# The short 220 px stage of the starter recipe (docs/starter-model.md): fine-tunes the long run's model at
# 220 px on a seeded sample of the same photos (the published recipe's last stage also uses part of the data).
# Usage: bash bench/starter_finish.sh [FROM_MODEL] [MODEL_DIR] [N_PHOTOS]
set -euo pipefail
FROM=${1:-runs/starter-long}
OUT=${2:-runs/starter-220}
N=${3:-1500}
D=../shared/data/photos
colorkit train $D/train $D/more -o "$OUT" --valid $D/valid --from "$FROM" --no-pretrained \
  --threads ${THREADS:-1} --in-memory --precision auto --seed 43 --max-items "$N" --track $D/valid \
  --loss l1 --render-size 128 --eval-size 256 --stages 220:1:8@2e-5..5e-5
