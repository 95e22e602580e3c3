"""Training/evaluation glue on Detectron2's engine: config setup and the ``FastTCMTrainer``."""
from .defaults import load_config, setup
from .trainer import FastTCMTrainer, build_evaluator_for_dataset, build_mapper

__all__ = ["load_config", "setup", "FastTCMTrainer", "build_evaluator_for_dataset", "build_mapper"]
