#!/usr/bin/env bash
# Backbone speed in the text and DOTA settings (see README.md). DEVICE=cuda to run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
$PY tools/benchmark_backbone.py --device "$DEVICE"
$PY tools/benchmark_backbone.py --device "$DEVICE" --size 1024 --num-prompts 15 --context-length 77
# the reference code's dense embedding (every pixel through CLIP's attention pool), for comparison
$PY tools/benchmark_backbone.py --device "$DEVICE" --dense-pool attention
