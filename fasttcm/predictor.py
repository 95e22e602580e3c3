"""``FastTCMPredictor``: one image in, the model's outputs out (Detectron2's ``DefaultPredictor``, generalised).

Differences from ``DefaultPredictor``: it keeps every key the model returns (e.g. ``score_map`` for heat maps),
and images larger than ``TEST.FASTTCM.TILE_SIZE`` are cut into overlapping tiles (DOTA's patch layout: stride
``TILE_SIZE - TILE_GAP``, last tile flush with the border) whose oriented boxes are shifted back to the image and
merged with class-wise polygon NMS (``TILE_NMS_THRESH``), the same path as DOTA's split/merge evaluation.
"""
import logging

import numpy as np
import torch
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.structures import Instances, RotatedBoxes

from . import modeling  # noqa: F401  (registers the meta-architectures build_model may name)
from .checkpoint import FastTCMCheckpointer
from .structures.quads import poly_nms, rboxes_to_quads
from .structures.patches import patch_origins


class FastTCMPredictor:
    """Build the model from ``cfg``, load ``cfg.MODEL.WEIGHTS`` (when set) and run it on single BGR images.

    ``predictor(img)`` takes an (H, W, 3) uint8 BGR image and returns the model's output dict for it, with
    ``instances`` in original image coordinates.

    Weights are read by :class:`fasttcm.checkpoint.FastTCMCheckpointer` and must fit the model completely (a file
    without the model's heads is refused unless ``TEST.FASTTCM.ALLOW_INCOMPLETE_WEIGHTS``); with no
    ``MODEL.WEIGHTS`` the model keeps its random initialisation and a warning says so.
    """

    def __init__(self, cfg):
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        if cfg.MODEL.WEIGHTS:
            FastTCMCheckpointer.for_inference(cfg, self.model).load(cfg.MODEL.WEIGHTS)
        else:
            logging.getLogger(__name__).warning(
                "MODEL.WEIGHTS is empty: the model runs with randomly initialised weights")
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {self.input_format!r}")
        self.tile_size = cfg.TEST.FASTTCM.TILE_SIZE
        self.tile_gap = cfg.TEST.FASTTCM.TILE_GAP
        self.tile_nms = cfg.TEST.FASTTCM.TILE_NMS_THRESH

    @torch.no_grad()
    def run_single(self, image_bgr):
        """The model on one whole image (resized to the test size), outputs in that image's coordinates."""
        image = image_bgr[:, :, ::-1] if self.input_format == "RGB" else image_bgr
        height, width = image.shape[:2]
        image = self.aug.get_transform(image).apply_image(image)
        image = torch.as_tensor(np.ascontiguousarray(image.astype("float32").transpose(2, 0, 1)))
        return self.model([{"image": image, "height": height, "width": width}])[0]

    def __call__(self, original_image):
        h, w = original_image.shape[:2]
        if self.tile_size > 0 and max(h, w) > self.tile_size:
            return self.run_tiled(original_image)
        return self.run_single(original_image)

    @torch.no_grad()
    def run_tiled(self, image_bgr):
        """Tiles of ``TILE_SIZE`` (gap ``TILE_GAP``), each through :meth:`run_single`; oriented boxes shifted back
        and merged by class-wise polygon NMS. Returns ``{"instances": Instances}`` for the whole image."""
        h, w = image_bgr.shape[:2]
        s = self.tile_size
        boxes, scores, classes = [], [], []
        for left, up in patch_origins(w, h, s, self.tile_gap):
            tile = np.ascontiguousarray(image_bgr[up:up + s, left:left + s])
            inst = self.run_single(tile)["instances"].to("cpu")
            if not isinstance(getattr(inst, "pred_boxes", None), RotatedBoxes):
                raise ValueError("tiled inference merges oriented boxes; this model does not return RotatedBoxes")
            b = inst.pred_boxes.tensor.clone()
            b[:, 0] += left
            b[:, 1] += up
            boxes.append(b)
            scores.append(inst.scores)
            classes.append(inst.pred_classes)
        boxes, scores, classes = torch.cat(boxes), torch.cat(scores), torch.cat(classes)
        keep = poly_nms(rboxes_to_quads(boxes.numpy()), scores.numpy(), groups=classes.numpy(), iou_thr=self.tile_nms)
        keep = torch.as_tensor(keep, dtype=torch.int64)
        out = Instances((h, w))
        out.pred_boxes = RotatedBoxes(boxes[keep])
        out.scores = scores[keep]
        out.pred_classes = classes[keep]
        return {"instances": out}
