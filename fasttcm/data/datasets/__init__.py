"""Dataset loaders from the native formats, and their registration in Detectron2's catalogs.

Importing this package registers every built-in dataset (lazily: nothing is read until
``DatasetCatalog.get(name)``); :mod:`.builtin` holds the registrations and the text-format table.
"""
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from .builtin import TEXT_SPLITS, datasets_root, register_all, register_all_text, text_split_paths
from .dota import load_dota_dataset, register_all_dota, register_dota
from .records import TextInstance
from .synthetic_aerial import SyntheticAerialConfig, register_synthetic_aerial, render_synthetic_aerial_image
from .synthetic_text import (
    SyntheticTextConfig,
    materialize_synthetic_text,
    register_synthetic_text,
    render_synthetic_text_image,
)
from .text import (
    TEXT_FORMATS,
    LoadStats,
    TextFormat,
    load_gt_file,
    load_text_dataset,
    register_text_dataset,
    register_text_format,
)

__all__ = [
    "TEXT_SPLITS", "TEXT_FORMATS", "TextFormat", "TextInstance", "LoadStats", "SyntheticTextConfig",
    "SyntheticAerialConfig", "datasets_root", "load_dota_dataset", "load_gt_file", "load_text_dataset",
    "materialize_synthetic_text", "register_all", "register_all_dota", "register_all_text", "register_dota",
    "register_synthetic_aerial", "register_synthetic_text", "register_text_dataset", "register_text_format",
    "render_synthetic_aerial_image", "render_synthetic_text_image", "text_split_paths",
]

register_all()
