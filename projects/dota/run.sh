#!/usr/bin/env bash
# Split DOTA-v1.0, train MODE, evaluate with merging (see README.md). Extra args go to train_net.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:?mode: baseline | tcm | fasttcm}; shift
PY=${PY:-.venv/bin/python}
ROOT=${DETECTRON2_DATASETS:-datasets}/dota
for split in train val; do
  $PY tools/dota_split.py "$ROOT/$split" "$ROOT/${split}_1024" --subsize 1024 --gap 200 --rates 1.0
done
$PY tools/train_net.py --config-file configs/dota/${MODE}_R50_dota_1024_12e.yaml "$@"
