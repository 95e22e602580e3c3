"""Evaluators with the field's protocols: ICDAR 2015 / Total-Text / CTW1500 text detection and end-to-end
spotting (``text_eval``), and DOTA-v1.0 Task1 (``dota_eval``). Each has a standalone CLI and a Detectron2
``DatasetEvaluator``."""
from .dota_evaluator import DOTAEvaluator
from .text_evaluator import TextDetEvaluator

__all__ = ["DOTAEvaluator", "TextDetEvaluator"]
