"""Built-in registrations of the text datasets under ``$DETECTRON2_DATASETS`` (default ``./datasets``).

Importing :mod:`fasttcm.data` calls :func:`register_all_text`; nothing is read until ``DatasetCatalog.get(name)``,
so missing datasets do not break the import. For each split the first folder name of each list that exists under
the dataset root is used (official names accepted, so an unpacked official archive works as is); when none exists
the first name is registered and loading fails naming it. See ``datasets/README.md`` for the trees.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence, Tuple

from .text import register_text_dataset

__all__ = ["TEXT_SPLITS", "register_all_text", "datasets_root", "text_split_paths"]

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


def datasets_root() -> str:
    """``$DETECTRON2_DATASETS`` (``~`` expanded), default ``datasets`` (relative to the working directory)."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


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
