"""Data: dataset registration from native formats, mappers and augmentations, DB targets, synthetic data, and the
DOTA file tools.

Importing this package is light (no torch, no detectron2), so that :mod:`fasttcm.data.dota` (label and Task1
files, split/merge) serves the evaluators without them. ``import fasttcm.data.datasets`` registers
the built-in datasets; the names below are loaded on first access (PEP 562), and those that come from
:mod:`fasttcm.data.datasets` register the datasets at that moment.
"""
import importlib

#: public name -> submodule of fasttcm.data that defines it
_LAZY = {
    "LoadStats": "datasets",
    "SyntheticTextConfig": "datasets",
    "TextInstance": "datasets",
    "load_gt_file": "datasets",
    "load_text_dataset": "datasets",
    "register_synthetic_text": "datasets",
    "register_text_dataset": "datasets",
    "render_synthetic_text_image": "datasets",
    "RotatedDatasetMapper": "rotated_mapper",
    "TextDatasetMapper": "text_mapper",
}
_SUBMODULES = ("datasets", "db_targets", "dota", "fileio", "rotated_mapper", "rotated_transforms", "text_mapper",
               "transforms")

__all__ = sorted(_LAZY) + list(_SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
