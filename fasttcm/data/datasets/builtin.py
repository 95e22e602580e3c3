"""Every built-in registration, in one place (as ``detectron2/data/datasets/builtin.py``): the text GT formats
and all datasets under ``$DETECTRON2_DATASETS`` (default ``./datasets``).

:func:`register_all` runs when :mod:`fasttcm.data.datasets` is imported. Nothing is read until
``DatasetCatalog.get(name)``, so missing datasets do not break the import. For each text split the first folder
name of each list that exists under the dataset root is used (official names accepted, so an unpacked official
archive works as is); when none exists the first name is registered and loading fails naming it. See
``datasets/README.md`` for the trees.

A new text format is one module with a ``load_<format>_gt(path) -> List[TextInstance]`` parser plus one
``register_text_format(TextFormat(...))`` line below; a new dataset is one entry of :data:`TEXT_SPLITS` (or a
``register_*`` call).
"""
from __future__ import annotations

import os
from typing import Dict, Sequence, Tuple

from ..fileio import datasets_root
from .ctw1500 import load_ctw1500_gt, load_polygon_txt_gt
from .dota import register_all_dota
from .icdar2015 import load_icdar2015_gt
from .synthetic_aerial import register_builtin_synthetic_aerial
from .synthetic_text import register_builtin_synthetic_text
from .text import TextFormat, register_text_dataset, register_text_format, strip_prefix
from .totaltext import load_totaltext_gt

__all__ = ["TEXT_SPLITS", "register_all", "register_all_text", "datasets_root", "text_split_paths"]

# ------------------------------------------------------------------------------------------ text formats --
# name, evaluation protocol, word spotting by default, GT extensions, GT stem -> image stem, parser, aliases
register_text_format(TextFormat("icdar15", "icdar15", False, (".txt",), strip_prefix("gt_"), load_icdar2015_gt,
                                ("icdar2015", "ic15")))
register_text_format(TextFormat("totaltext", "totaltext", True, (".mat", ".txt"), strip_prefix("poly_gt_", "gt_"),
                                load_totaltext_gt, ("total_text",)))
register_text_format(TextFormat("ctw1500", "ctw1500", False, (".txt", ".xml"), strip_prefix("gt_"),
                                load_ctw1500_gt, ("ctw",)))
# x1,y1,...,xn,yn,####text lines, one file per image (e.g. 0000001.txt): the synthetic sets' GT
register_text_format(TextFormat("polygon_txt", "totaltext", True, (".txt",), strip_prefix("gt_"),
                                load_polygon_txt_gt))

# -------------------------------------------------------------------------------------------- datasets --

# name -> (dataset folder, fmt, image folder candidates, GT folder candidates)
TEXT_SPLITS: Dict[str, Tuple[str, str, Sequence[str], Sequence[str]]] = {
    "icdar2015_train": (
        "icdar2015",
        "icdar15",
        ("train_images", "ch4_training_images"),
        ("train_gts", "ch4_training_localization_transcription_gt"),
    ),
    "icdar2015_test": (
        "icdar2015",
        "icdar15",
        ("test_images", "ch4_test_images"),
        ("test_gts", "Challenge4_Test_Task1_GT"),
    ),
    "totaltext_train": (
        "totaltext",
        "totaltext",
        ("Images/Train", "train_images"),
        ("Groundtruth/Polygon/Train", "Groundtruth/Text/Train", "train_gts"),
    ),
    "totaltext_test": (
        "totaltext",
        "totaltext",
        ("Images/Test", "test_images"),
        ("Groundtruth/Polygon/Test", "Groundtruth/Text/Test", "test_gts"),
    ),
    "ctw1500_train": (
        "ctw1500",
        "ctw1500",
        ("train_images", "train/text_image"),
        ("train_labels", "ctw1500_train_labels", "train/text_label_curve"),
    ),
    "ctw1500_test": (
        "ctw1500",
        "ctw1500",
        ("test_images", "test/text_image"),
        ("test_labels", "ctw1500_test_labels", "test/text_label_curve"),
    ),
}


def _first_existing(base: str, candidates: Sequence[str]) -> str:
    for c in candidates:
        p = os.path.join(base, c)
        if os.path.isdir(p):
            return p
    return os.path.join(base, candidates[0])


def text_split_paths(name: str, root: str | None = None) -> Tuple[str, str]:
    """``(image_root, gt_root)`` that split ``name`` of :data:`TEXT_SPLITS` resolves to under ``root``."""
    folder, _fmt, img_dirs, gt_dirs = TEXT_SPLITS[name]
    base = os.path.join(datasets_root() if root is None else root, folder)
    return _first_existing(base, img_dirs), _first_existing(base, gt_dirs)


def register_all_text(root: str | None = None) -> None:
    """Register every split of :data:`TEXT_SPLITS` under ``root`` (default :func:`datasets_root`).

    Already registered names are left alone (so a second call is harmless).
    """
    from detectron2.data import DatasetCatalog

    root = datasets_root() if root is None else root
    registered = set(DatasetCatalog.list())
    for name, (_folder, fmt, _img_dirs, _gt_dirs) in TEXT_SPLITS.items():
        if name not in registered:
            register_text_dataset(name, *text_split_paths(name, root), fmt=fmt)


def register_all(root: str | None = None) -> None:
    """Register every built-in dataset (text splits, DOTA splits, the synthetic sets); names already registered
    are left alone, so a second call is harmless."""
    register_all_text(root)
    register_all_dota(root)
    register_builtin_synthetic_text()
    register_builtin_synthetic_aerial()
