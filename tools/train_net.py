#!/usr/bin/env python
"""Train or evaluate a fasttcm model (text detection, oriented detection) with Detectron2's engine.

Examples:
  python tools/train_net.py --config-file configs/quickstart/fasttcm_synthtext_cpu.yaml
  python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
  python tools/train_net.py --config-file CFG --resume              # continue from OUTPUT_DIR/last_checkpoint
  python tools/train_net.py --config-file CFG --num-gpus 8 SOLVER.IMS_PER_BATCH 16
  python tools/train_net.py --config-file CFG --num-gpus 2   # no GPU: 2 CPU processes (gloo), MODEL.DEVICE cpu
"""
import fasttcm.engine  # noqa: F401,I001  (first: registers backbones, heads, datasets; supplies detectron2's ops)
from detectron2.engine import default_argument_parser

from fasttcm.checkpoint import CheckpointError, FastTCMCheckpointer
from fasttcm.engine import FastTCMTrainer, load_config, setup
from fasttcm.engine.defaults import ConfigError
from fasttcm.engine.launch import launch


def main(args):
    try:
        return _run(args)
    except CheckpointError as e:  # a bad weight file: one line naming it, not a traceback
        raise SystemExit(f"error: {e}") from None


def _run(args):
    cfg = setup(args)
    if args.eval_only:
        model = FastTCMTrainer.build_model(cfg)
        checkpointer = FastTCMCheckpointer.for_inference(cfg, model)
        if not cfg.MODEL.WEIGHTS and not (args.resume and checkpointer.has_checkpoint()):
            if not cfg.TEST.FASTTCM.ALLOW_INCOMPLETE_WEIGHTS:
                raise SystemExit("--eval-only needs trained weights: give MODEL.WEIGHTS path/to/model_final.pth "
                                 "(or --resume with a last_checkpoint in OUTPUT_DIR); set "
                                 "TEST.FASTTCM.ALLOW_INCOMPLETE_WEIGHTS True to evaluate a randomly initialised model")
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return FastTCMTrainer.test(cfg, model)
    trainer = FastTCMTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser(epilog=__doc__).parse_args()
    try:  # a broken config fails here, once, with the file and key named (not in every worker)
        load_config(args.config_file or None, args.opts)
    except (ConfigError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
