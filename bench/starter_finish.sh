#!/usr/bin/env bash
# The short 220 px stage of the starter recipe (docs/starter-model.md): fine-tunes the long run's model at
# 220 px on a seeded sample of the same photos (the published recipe's last stage also uses part of the data).
# Usage: bash bench/starter_finish.sh [FROM_MODEL] [MODEL_DIR] [N_PHOTOS]
set -euo pipefail
FROM=${1:-runs/starter-long}
OUT=${2:-runs/starter-220}
N=${3:-1500}
source "$(dirname "$0")/_starter_train.sh"
starter_train "$OUT" "$FROM" 43 220:1:8@2e-5..5e-5 --max-items "$N"
