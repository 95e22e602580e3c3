"""DOTA tooling: label/Task1 file formats (:mod:`.labels`), splitting images into patches (:mod:`.split`) and
merging patch detections back (:mod:`.merge`). Quad geometry and polygon NMS are in :mod:`fasttcm.structures.quads`.

Nothing here imports Detectron2 or torch; the dataset registration lives in :mod:`fasttcm.data.datasets.dota` and
the evaluation in :mod:`fasttcm.evaluation.dota_eval`. The names below load their module on first access
(PEP 562), so the evaluator imports only what it uses.
"""
import importlib

_LAZY = {
    "DOTA_V1_CLASSES": "labels",
    "DOTA_V15_CLASSES": "labels",
    "LabelFile": "labels",
    "Task1Detections": "labels",
    "dota_classes": "labels",
    "parse_label_file": "labels",
    "read_task1_dir": "labels",
    "read_task1_file": "labels",
    "write_task1_dir": "labels",
    "merge_detections": "merge",
    "merge_task1": "merge",
    "merge_task1_dir": "merge",
    "patch_to_image": "merge",
    "SplitConfig": "split",
    "SplitStats": "split",
    "parse_patch_name": "split",
    "patch_name": "split",
    "patch_origins": "split",
    "patch_starts": "split",
    "split_dataset": "split",
    "split_image": "split",
}
_SUBMODULES = ("labels", "merge", "split")

__all__ = sorted(_LAZY) + list(_SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
