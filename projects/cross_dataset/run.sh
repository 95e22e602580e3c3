#!/usr/bin/env bash
# Train on SRC, evaluate on DST (see README.md). Extra KEY VALUE pairs go to both runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${1:?source dataset}; DST=${2:?target dataset}; MODE=${3:?mode}; shift 3
PY=${PY:-.venv/bin/python}
OUT=output/cross_dataset/${SRC}_to_${DST}_${MODE}
$PY tools/train_net.py --config-file configs/$SRC/${MODE}_R50_$SRC.yaml OUTPUT_DIR $OUT "$@"
$PY tools/train_net.py --config-file configs/$DST/${MODE}_R50_$DST.yaml --eval-only \
    MODEL.WEIGHTS $OUT/model_final.pth OUTPUT_DIR $OUT/eval_$DST "$@"
