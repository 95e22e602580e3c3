"""Evaluators with the field's protocols (rules: ``docs/PROTOCOLS.md``): ICDAR 2015 / Total-Text / CTW1500 text
detection and end-to-end spotting (``text_eval``), and DOTA-v1.0 / v1.5 Task1 (``dota_eval``). Each has a
standalone CLI (``tools/evaluate_text.py`` / ``tools/evaluate_dota.py``, or ``python -m
fasttcm.evaluation.text_eval`` / ``dota_eval``) and a Detectron2 ``DatasetEvaluator``.

This package and its protocol modules import only numpy and shapely (no torch, no detectron2). The evaluator
classes are imported on first use (they need detectron2), which also keeps ``python -m`` from importing the
protocol modules twice.
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
