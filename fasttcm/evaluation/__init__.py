"""Evaluators with the field's protocols: ICDAR 2015 / Total-Text / CTW1500 text detection and end-to-end
spotting (``text_eval``), and DOTA-v1.0 Task1 (``dota_eval``). Each has a standalone CLI
(``python -m fasttcm.evaluation.text_eval`` / ``dota_eval``) and a Detectron2 ``DatasetEvaluator``.

The evaluator classes are imported on first use, so that running the protocol modules with ``python -m`` does not
import them twice.
"""
__all__ = ["DOTAEvaluator", "TextDetEvaluator"]


def __getattr__(name):
    if name == "DOTAEvaluator":
        from .dota_evaluator import DOTAEvaluator

        return DOTAEvaluator
    if name == "TextDetEvaluator":
        from .text_evaluator import TextDetEvaluator

        return TextDetEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
