"""``TextDatasetMapper``: Detectron2 text dataset dicts -> inputs of the ``TextDetector`` (DB head).

Input: a dataset dict (``file_name``, ``height``, ``width``, ``image_id``, ``annotations`` with ``segmentation`` =
list of flat polygons ``[x1, y1, x2, y2, ...]`` in pixels, ``category_id``, ``iscrowd`` = 1 for don't care).

Output dict (training):

* ``image``: (3, H, W) uint8 tensor in ``INPUT.FORMAT`` channel order (the augmented image);
* ``height``, ``width``, ``file_name``, ``image_id``: copied (original image size);
* ``instances``: ``Instances((H, W))`` with ``gt_masks`` (``PolygonMasks``, one polygon per instance),
  ``gt_boxes`` (``Boxes``, XYXY around each polygon), ``gt_classes`` (int64), ``gt_ignore`` (bool, don't care);
* ``db_targets``: dict of (H, W) float32 tensors ``prob``, ``prob_mask``, ``thresh``, ``thresh_mask``
  (:func:`fasttcm.data.db_targets.make_db_targets`).

At test time only the resize is applied, annotations are dropped, and ``height``/``width`` keep the original size
(the model rescales its polygons to it).

Annotations are validated with :func:`fasttcm.structures.polygons.repair_polygon` (invalid ones repaired or dropped);
a multi-part ``segmentation`` gives one instance per part. After augmentation, polygons are clipped to the image
(:func:`fasttcm.data.transforms.clip_polygons_to_image`): heavily cut text becomes don't care.
"""
from __future__ import annotations

import copy
import logging
from typing import List

import numpy as np
import torch
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.structures import Boxes, Instances, PolygonMasks

from .db_targets import make_db_targets
from ..structures.polygons import repair_polygon
from .transforms import TextAugInput, build_text_augmentations, clip_polygons_to_image

logger = logging.getLogger(__name__)

__all__ = ["TextDatasetMapper", "read_text_annotations"]


def read_text_annotations(annotations, file_name: str = "?"):
    """Dataset-dict annotations -> ``(polygons, ignore, classes)``.

    ``polygons``: list of ``(N, 2)`` float64 arrays (pixels); ``ignore``: (M,) bool from ``iscrowd`` (or an
    ``ignore`` key); ``classes``: (M,) int64 ``category_id`` (0 when absent). Polygons that cannot be repaired are
    dropped (logged at debug level); RLE masks are refused.
    """
    polys, ignore, classes = [], [], []
    for k, a in enumerate(annotations):
        seg = a.get("segmentation")
        if seg is None:
            continue
        if isinstance(seg, dict):
            raise ValueError(f"{file_name}: annotation {k} has an RLE mask; text datasets need polygons")
        ign = bool(a.get("iscrowd", 0) or a.get("ignore", 0))
        for part in seg:
            r = repair_polygon(part)
            if r.points is None:
                logger.debug(f"{file_name}: annotation {k} dropped ({r.reason})")
                continue
            polys.append(r.points)
            ignore.append(ign)
            classes.append(int(a.get("category_id", 0)))
    return polys, np.array(ignore, dtype=bool), np.array(classes, dtype=np.int64)


class TextDatasetMapper:
    """Read, augment (polygon-aware) and build DB targets; see the module docstring for the output format."""

    @configurable
    def __init__(self, is_train: bool, *, augmentations: List, image_format: str, target_params: dict,
                 min_visible: float = 0.5):
        """
        Args:
            is_train: training (augmentations, instances and targets) or test (resize only).
            augmentations: list of Detectron2 augmentations (see :func:`build_text_augmentations`).
            image_format: ``INPUT.FORMAT`` ("BGR", "RGB", ...).
            target_params: keyword arguments of :func:`make_db_targets` (``shrink_ratio``, ``thresh_min``,
                ``thresh_max``, ``min_text_size``).
            min_visible: :func:`clip_polygons_to_image`'s threshold for marking cut text don't care.
        """
        self.is_train = is_train
        self.augmentations = list(augmentations)
        self.image_format = image_format
        self.target_params = dict(target_params)
        self.min_visible = min_visible

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        db = cfg.MODEL.FASTTCM.DB
        return {
            "is_train": is_train,
            "augmentations": build_text_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "target_params": {"shrink_ratio": db.SHRINK_RATIO, "thresh_min": db.THRESH_MIN,
                              "thresh_max": db.THRESH_MAX, "min_text_size": db.MIN_TEXT_SIZE},
            "min_visible": cfg.INPUT.FASTTCM.TEXT_MIN_VISIBLE,
        }

    def read_image(self, d) -> np.ndarray:
        """The image in ``image_format``, (H, W, C) uint8; raises ``OSError`` naming the file if unreadable."""
        try:
            image = utils.read_image(d["file_name"], format=self.image_format)
        except Exception as e:  # PIL raises several types for missing/corrupt files
            raise OSError(f"cannot read image {d['file_name']}: {type(e).__name__}: {e}") from e
        if image is None or image.size == 0:
            raise OSError(f"cannot read image {d['file_name']}: empty image")
        utils.check_image_size(d, image)
        return image

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        image = self.read_image(d)
        if self.is_train:
            polys, ignore, classes = read_text_annotations(d.get("annotations", []), d["file_name"])
        else:
            polys, ignore, classes = [], np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
        aug_input = TextAugInput(image, polygons=polys, ignore=ignore)
        for aug in self.augmentations:
            aug(aug_input)
        image = aug_input.image
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        d.pop("annotations", None)
        if not self.is_train:
            return d
        H, W = image.shape[:2]
        polys, ignore, src = clip_polygons_to_image(aug_input.polygons, aug_input.ignore, H, W, self.min_visible)
        classes = classes[src] if len(src) else np.zeros(0, dtype=np.int64)
        d["instances"] = self._instances((H, W), polys, ignore, classes)
        targets = make_db_targets(polys, ignore, H, W, **self.target_params)
        d["db_targets"] = {k: torch.from_numpy(v) for k, v in targets.items()}
        return d

    @staticmethod
    def _instances(size, polys, ignore, classes) -> Instances:
        inst = Instances(size)
        inst.gt_masks = PolygonMasks([[p.reshape(-1).astype(np.float64)] for p in polys])
        boxes = [[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polys]
        inst.gt_boxes = Boxes(torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)))
        inst.gt_classes = torch.as_tensor(classes, dtype=torch.int64)
        inst.gt_ignore = torch.as_tensor(ignore, dtype=torch.bool)
        return inst
