"""Training/evaluation glue on Detectron2's engine: config setup and the ``FastTCMTrainer``."""
import fasttcm as _fasttcm

_fasttcm.register_all()  # first: detectron2._C, config keys, datasets, models (the trainer needs them all)

from .defaults import load_config, setup
from .trainer import FastTCMTrainer, build_evaluator_for_dataset, build_mapper

__all__ = ["load_config", "setup", "FastTCMTrainer", "build_evaluator_for_dataset", "build_mapper"]
