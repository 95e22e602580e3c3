"""``RotatedDatasetMapper``: Detectron2 dataset dicts with ``XYWHA_ABS`` boxes -> model inputs.

The stock ``DatasetMapper`` converts every box to axis-aligned ``XYXY_ABS``; this one keeps rotated boxes and moves
them with each transform's ``apply_rotated_box`` (resize, horizontal/vertical flips, quarter-turn rotations).
"""
import copy
import logging

import numpy as np
import torch
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode, Instances, RotatedBoxes

from .rotated_transforms import RandomRot90, RandomVFlip

logger = logging.getLogger(__name__)


class RotatedDatasetMapper:
    """Read the image, augment image and rotated boxes together, and build ``Instances``.

    Output dict: ``image`` (3, H, W) uint8 tensor in ``image_format`` (0-255), ``height``/``width`` of the original
    image, and in training ``instances`` with ``gt_boxes`` (``RotatedBoxes``, pixels of the augmented image) and
    ``gt_classes`` (int64).
    """

    @configurable
    def __init__(self, is_train: bool, *, augmentations, image_format: str, keep_difficult: bool = True):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.keep_difficult = keep_difficult

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        if is_train:
            augs = [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                         cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)]
            f = cfg.INPUT.FASTTCM
            if f.ROTATED_HFLIP_PROB > 0:
                augs.append(T.RandomFlip(prob=f.ROTATED_HFLIP_PROB, horizontal=True, vertical=False))
            if f.ROTATED_VFLIP_PROB > 0:
                augs.append(RandomVFlip(prob=f.ROTATED_VFLIP_PROB))
            if f.ROTATED_ROT90_PROB > 0:
                augs.append(RandomRot90(prob=f.ROTATED_ROT90_PROB))
        else:
            augs = [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]
        return {"is_train": is_train, "augmentations": augs, "image_format": cfg.INPUT.FORMAT,
                "keep_difficult": cfg.INPUT.FASTTCM.ROTATED_KEEP_DIFFICULT}

    def __call__(self, dataset_dict):
        d = copy.deepcopy(dataset_dict)
        try:
            image = utils.read_image(d["file_name"], format=self.image_format)
        except Exception as e:
            raise OSError(f"cannot read image {d['file_name']}: {e}") from e
        utils.check_image_size(d, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            d.pop("annotations", None)
            return d
        annos = [a for a in d.pop("annotations", []) if self.keep_difficult or not a.get("difficult", 0)]
        boxes = np.zeros((len(annos), 5), dtype=np.float64)
        for i, a in enumerate(annos):
            if a.get("bbox_mode") != BoxMode.XYWHA_ABS:
                raise ValueError(
                    f"{d['file_name']}: annotation {i} has bbox_mode {a.get('bbox_mode')}, expected XYWHA_ABS "
                    "(rotated datasets must give (cx, cy, w, h, angle) boxes)"
                )
            boxes[i] = a["bbox"]
        if len(annos):
            boxes = transforms.apply_rotated_box(boxes)
        inst = Instances(image.shape[:2])
        inst.gt_boxes = RotatedBoxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 5))
        inst.gt_classes = torch.as_tensor([a["category_id"] for a in annos], dtype=torch.int64)
        keep = inst.gt_boxes.nonempty(threshold=1e-5)
        if not bool(keep.all()):
            logger.debug(f"{d['file_name']}: {int((~keep).sum())} boxes became empty after augmentation")
        d["instances"] = inst[keep]
        return d
