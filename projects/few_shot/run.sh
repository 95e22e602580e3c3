#!/usr/bin/env bash
# Train on a seeded PERCENT% subset of DATASET_train (see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASET=${1:?dataset: icdar2015 | totaltext | ctw1500}
MODE=${2:?mode: baseline | tcm | fasttcm}
PERCENT=${3:-10}
PY=${PY:-.venv/bin/python}
shift $(( $# < 3 ? $# : 3 ))
$PY - "$DATASET" "$MODE" "$PERCENT" "$@" <<'PYEOF'
import random
import sys

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser, launch

import fasttcm  # noqa: F401
from fasttcm.engine import FastTCMTrainer, setup

dataset, mode, percent, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
full, sub = f"{dataset}_train", f"{dataset}_train_p{percent}"


def subset():
    records = DatasetCatalog.get(full)
    k = max(1, round(len(records) * percent / 100))
    return sorted(random.Random(0).sample(records, k), key=lambda r: str(r["image_id"]))


DatasetCatalog.register(sub, subset)
MetadataCatalog.get(sub).set(**{k: v for k, v in MetadataCatalog.get(full).as_dict().items() if k != "name"})
args = default_argument_parser().parse_args(
    ["--config-file", f"configs/{dataset}/{mode}_R50_{dataset}.yaml", "DATASETS.TRAIN", f"('{sub}',)",
     "OUTPUT_DIR", f"output/few_shot/{dataset}_{mode}_p{percent}"] + extra)


def main(args):
    cfg = setup(args)
    trainer = FastTCMTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


launch(main, args.num_gpus, args=(args,))
PYEOF
