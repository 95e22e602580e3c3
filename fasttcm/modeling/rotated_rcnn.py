"""``FastTCMRotatedRCNN``: Detectron2's rotated Faster R-CNN (RRPN + RROIHeads) on a FastTCM backbone.

Identical to ``GeneralizedRCNN`` except that it calls ``backbone.forward_with_aux`` (when the backbone has it) and
trains the per-class score map with the masked per-class auxiliary loss against rasterised rotated-box masks
(``loss_score_map``, weight ``MODEL.FASTTCM.SCORE_MAP_LOSS_WEIGHT``). With a backbone without a text branch
(mode ``baseline``, or any Detectron2 backbone) it is exactly ``GeneralizedRCNN``.
"""
from typing import Dict, List

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

from ..structures.quads import rboxes_to_quads
from .losses import score_map_class_loss

_SUPERSAMPLE = 4  # sub-cells per score-map cell side used to measure box coverage


def rotated_box_class_masks(boxes: np.ndarray, classes: np.ndarray, num_classes: int, out_hw, stride: float):
    """Per-class coverage target for a score map of size ``out_hw`` = (h, w) and cell size ``stride`` pixels.

    Returns a (K, h, w) float32 array: the fraction of each cell covered by boxes of class k, raised to 1 in the
    cell that holds a box centre (so objects smaller than a cell still mark their cell). Values in [0, 1].
    """
    h, w = out_hw
    fine = np.zeros((num_classes, h * _SUPERSAMPLE, w * _SUPERSAMPLE), dtype=np.float32)
    corners = rboxes_to_quads(boxes) * (_SUPERSAMPLE / stride)
    for k, quad in zip(np.asarray(classes, dtype=np.int64), corners):
        _fill_convex(fine[k], quad)
    cover = fine.reshape(num_classes, h, _SUPERSAMPLE, w, _SUPERSAMPLE).mean(axis=(2, 4)).astype(np.float32)
    if len(boxes):
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        ix = np.clip((b[:, 0] / stride).astype(np.int64), 0, w - 1)
        iy = np.clip((b[:, 1] / stride).astype(np.int64), 0, h - 1)
        cover[np.asarray(classes, dtype=np.int64), iy, ix] = 1.0
    return cover


def _fill_convex(canvas: np.ndarray, quad: np.ndarray) -> None:
    """Set to 1 the pixels of ``canvas`` whose centres (i + 0.5) lie inside the convex quad (clockwise on screen,
    i.e. y-down) given in continuous pixel coordinates. Exact, unlike cv2.fillPoly, which also paints edge pixels."""
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    px, py = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    inside = np.ones(px.shape, dtype=bool)
    for a, b in zip(quad, np.roll(quad, -1, axis=0)):
        # clockwise on screen: interior points lie to the right of each edge, i.e. cross >= 0 in y-down axes
        inside &= (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0]) >= 0
    canvas[y0:y1, x0:x1][inside] = 1.0


@META_ARCH_REGISTRY.register()
class FastTCMRotatedRCNN(GeneralizedRCNN):
    """Rotated Faster R-CNN whose backbone may return a per-class score map for an auxiliary loss."""

    @configurable
    def __init__(self, *, score_map_loss_weight: float = 1.0, tau: float = 0.07, **kwargs):
        super().__init__(**kwargs)
        self.score_map_loss_weight = score_map_loss_weight
        self.tau = tau

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        ret["score_map_loss_weight"] = cfg.MODEL.FASTTCM.SCORE_MAP_LOSS_WEIGHT
        ret["tau"] = cfg.MODEL.FASTTCM.TAU
        return ret

    def _backbone(self, x):
        if hasattr(self.backbone, "forward_with_aux"):
            return self.backbone.forward_with_aux(x)
        return self.backbone(x), {}

    def score_map_targets(self, gt_instances, score_map: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) coverage targets for ``score_map`` from the images' ``gt_boxes``/``gt_classes``."""
        b, k, h, w = score_map.shape
        stride = self.backbone.size_divisibility or 32
        targets = [
            rotated_box_class_masks(inst.gt_boxes.tensor.detach().cpu().numpy(),
                                    inst.gt_classes.cpu().numpy(), k, (h, w), stride)
            for inst in gt_instances
        ]
        return torch.as_tensor(np.stack(targets), device=score_map.device)

    def forward(self, batched_inputs: List[Dict[str, torch.Tensor]]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features, aux = self._backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        losses = {**detector_losses, **proposal_losses}
        score_map = aux.get("score_map")
        if score_map is not None and self.score_map_loss_weight > 0:
            target = self.score_map_targets(gt_instances, score_map)
            losses["loss_score_map"] = self.score_map_loss_weight * score_map_class_loss(
                score_map, target, tau=self.tau)
        return losses

    def inference(self, batched_inputs, detected_instances=None, do_postprocess=True):
        assert not self.training
        images = self.preprocess_image(batched_inputs)
        features, aux = self._backbone(images.tensor)
        if detected_instances is None:
            proposals, _ = self.proposal_generator(images, features, None)
            results, _ = self.roi_heads(images, features, proposals, None)
        else:
            detected_instances = [x.to(self.device) for x in detected_instances]
            results = self.roi_heads.forward_with_given_boxes(features, detected_instances)
        if not do_postprocess:
            return results
        outputs = GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)
        score_map = aux.get("score_map")
        if score_map is not None:
            stride = self.backbone.size_divisibility or 32
            for i, (out, (h, w)) in enumerate(zip(outputs, images.image_sizes)):
                # the part of the map over the image (the rest lies over padding), (K, ceil(h/s), ceil(w/s))
                out["score_map"] = score_map[i, :, : -(-h // stride), : -(-w // stride)]
        return outputs
