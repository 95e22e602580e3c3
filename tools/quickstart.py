#!/usr/bin/env python
"""The quick start (`make demo`): train FastTCM on synthetic scene text on the CPU, evaluate it, draw it.

1. renders the synthetic scene-text sets (seeded, cached under $DETECTRON2_DATASETS, default ./datasets);
2. trains FastTCM (tiny random CLIP + DB head) with configs/quickstart/fasttcm_synthtext_cpu.yaml, seeded by its
   SEED (repeatable on the same machine);
3. evaluates on the synthetic validation set with the Total-Text polygon protocol at a fixed score threshold;
4. draws predictions and score-map heat maps on the real photos in demo/images;
and ends with the line `quickstart: precision=P recall=R hmean=H (synthetic val, N images)`.
No download and no GPU are needed. Extra `KEY VALUE` pairs override the config (e.g. SOLVER.MAX_ITER 100).
"""
import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default=str(REPO / "configs/quickstart/fasttcm_synthtext_cpu.yaml"))
    p.add_argument("--output", default="output/quickstart", help="folder for checkpoints, metrics and pictures")
    p.add_argument("--images", default=str(REPO / "demo/images"), help="real photos to draw predictions on")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config overrides")
    args = p.parse_args(argv)

    from fasttcm.engine import FastTCMTrainer, load_config  # first: registers everything, supplies detectron2._C

    from detectron2.data import DatasetCatalog
    from detectron2.utils.env import seed_all_rng
    from detectron2.utils.logger import setup_logger

    cfg = load_config(args.config_file, ["OUTPUT_DIR", args.output] + list(args.opts))
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)  # as default_setup does: the config's SEED makes runs repeatable
    setup_logger(output=cfg.OUTPUT_DIR, name="detectron2")
    setup_logger(output=cfg.OUTPUT_DIR, name="fasttcm")
    log = logging.getLogger("fasttcm.quickstart")

    t0 = time.perf_counter()
    trainer = FastTCMTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    t_train = time.perf_counter() - t0
    results = FastTCMTrainer.test(cfg, trainer.model)
    val_name = cfg.DATASETS.TEST[0]
    det = results[val_name]["text_det"] if val_name in results else results["text_det"]
    n_val = len(DatasetCatalog.get(val_name))
    with open(os.path.join(cfg.OUTPUT_DIR, "quickstart_metrics.json"), "w") as f:
        json.dump({"dataset": val_name, "images": n_val, "train_seconds": round(t_train, 1), **det}, f, indent=1)

    from fasttcm.utils.demo import run_demo

    pictures = os.path.join(cfg.OUTPUT_DIR, "demo")
    run_demo(["--config-file", args.config_file, "--input", args.images, "--output", pictures, "--heatmap",
              "MODEL.WEIGHTS", os.path.join(cfg.OUTPUT_DIR, "model_final.pth")] + list(args.opts))
    log.info(f"trained in {t_train / 60:.1f} min; checkpoint {cfg.OUTPUT_DIR}/model_final.pth; metrics "
             f"{cfg.OUTPUT_DIR}/metrics.json and {cfg.OUTPUT_DIR}/quickstart_metrics.json; pictures {pictures}/")
    print(f"quickstart: precision={det['precision'] / 100:.3f} recall={det['recall'] / 100:.3f} "
          f"hmean={det['hmean'] / 100:.3f} (synthetic val, {n_val} images)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
