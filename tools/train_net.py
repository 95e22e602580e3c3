#!/usr/bin/env python
"""Train or evaluate a fasttcm model (text detection, oriented detection) with Detectron2's engine.

Examples:
  python tools/train_net.py --config-file configs/quickstart/fasttcm_synthtext_cpu.yaml
  python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
  python tools/train_net.py --config-file CFG --resume              # continue from OUTPUT_DIR/last_checkpoint
  python tools/train_net.py --config-file CFG --num-gpus 8 SOLVER.IMS_PER_BATCH 16
"""
import fasttcm.engine  # noqa: F401,I001  (first: registers backbones, heads, datasets; supplies detectron2's ops)
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser, launch

from fasttcm.engine import FastTCMTrainer, setup


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = FastTCMTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return FastTCMTrainer.test(cfg, model)
    trainer = FastTCMTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser(epilog=__doc__).parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
