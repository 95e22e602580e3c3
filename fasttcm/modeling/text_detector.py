"""``TextDetector``: polygon scene-text detection meta-architecture (any backbone + DB head), with FastTCM's
auxiliary score-map loss when the backbone provides a score map.

Inputs (``forward(batched_inputs)``), one dict per image, as produced by
:class:`fasttcm.data.text_mapper.TextDatasetMapper`:

* ``image``: (3, H, W) tensor in ``INPUT.FORMAT`` order, 0-255;
* ``height``, ``width`` (optional): size of the original image that predictions are rescaled to;
* training: ``db_targets`` (dict of (H, W) tensors, see :mod:`fasttcm.data.db_targets`); ``instances`` are carried
  along but the losses only need the targets.

Normalization: ``(image - MODEL.PIXEL_MEAN) / MODEL.PIXEL_STD``. FastTCM configs use CLIP's convention: RGB input
(``INPUT.FORMAT = "RGB"``) and CLIP's mean/std in 0-255 units ([122.771, 116.746, 104.094] /
[68.501, 66.632, 70.323]; :func:`fasttcm.modeling.backbone.set_clip_input_config` writes them). Images are padded
to a multiple of ``backbone.size_divisibility`` (``ImageList``); targets are padded alike (padding counts as
background for the probability map and is excluded from the threshold loss).

Training returns ``loss_db_prob``, ``loss_db_binary``, ``loss_db_thresh`` and, when the backbone's
``forward_with_aux`` gives ``aux["score_map"]`` (and ``MODEL.FASTTCM.SCORE_MAP_LOSS_WEIGHT > 0``),
``loss_score_map`` = weight x ``score_map_text_loss(score_map, text, ignore)`` (:func:`score_map_targets`). Like
every Detectron2 model, a training forward needs an ``EventStorage``.

Inference returns, per image, ``{"instances": Instances((height, width))}`` with ``pred_polygons`` (a
:class:`~fasttcm.structures.polygons.PolygonList` of (n, 2) float32 arrays, original-image pixels),
``scores`` (float32), ``pred_classes`` (int64 zeros) and ``pred_boxes`` (``Boxes`` XYXY around each polygon), all
on the CPU whatever the model's device;
with ``TEST.FASTTCM.RETURN_MAPS`` also ``prob_map`` (height, width) float32 tensor (P resized to the original
image) and, when the backbone gives one, ``score_map`` (K, h, w): the cosine score map over the image's part of
the padded batch (stride 32 of the resized image).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from .db_head import DBHead
from ..structures.polygons import polygons_to_boxes
from .db_postprocess import DBPostProcessor

__all__ = ["TextDetector", "score_map_targets", "pad_db_targets"]

_TARGET_KEYS = ("prob", "prob_mask", "thresh", "thresh_mask")
#: value of each target in the batch padding
_PAD_VALUES = {"prob": 0.0, "prob_mask": 1.0, "thresh": 0.0, "thresh_mask": 0.0}


def pad_db_targets(targets: List[Dict[str, torch.Tensor]], size: Tuple[int, int],
                   device: torch.device) -> Dict[str, torch.Tensor]:
    """Stack per-image (H_i, W_i) DB targets into (B, H, W) tensors of the padded ``size`` (bottom/right pad)."""
    out = {}
    for k in _TARGET_KEYS:
        maps = []
        for t in targets:
            m = t[k].to(device=device, dtype=torch.float32)
            ph, pw = size[0] - m.shape[0], size[1] - m.shape[1]
            if ph < 0 or pw < 0:
                raise ValueError(f"DB target {k} of size {tuple(m.shape)} exceeds the padded batch {size}")
            maps.append(F.pad(m, (0, pw, 0, ph), value=_PAD_VALUES[k]))
        out[k] = torch.stack(maps)
    return out


def score_map_targets(prob: torch.Tensor, prob_mask: torch.Tensor, size: Tuple[int, int]):
    """Score-map targets at the score map's resolution from full-resolution DB targets.

    Args:
        prob: (B, H, W) shrunk text mask; prob_mask: (B, H, W), 0 on don't-care/degenerate text.
        size: (h, w) of the score map (H / h must equal W / w, an integer stride, 32 for FastTCM).
    Returns:
        ``(text, ignore)``, (B, 1, h, w) float / bool: a cell is text when any of its pixels lies in the shrunk
        text (max pooling: with area pooling most words, thinner than a 32-pixel cell once shrunk, would vanish);
        a cell with don't-care pixels and no text is ignored. Uses ``fasttcm.modeling.losses.downsample_mask``.
    """
    from .losses import downsample_mask

    H, W = prob.shape[-2:]
    stride = H // size[0]
    if stride * size[0] != H or stride * size[1] != W:
        raise ValueError(f"targets {H}x{W} are not a multiple of the score map {size}")
    text = downsample_mask(prob.unsqueeze(1), stride, mode="max")
    dont_care = downsample_mask((1.0 - prob_mask).unsqueeze(1), stride, mode="max")
    ignore = (dont_care > 0) & (text <= 0)
    return text, ignore


@META_ARCH_REGISTRY.register()
class TextDetector(nn.Module):
    """Backbone (FPN) -> :class:`DBHead` -> :class:`DBPostProcessor` (see module docstring)."""

    @configurable
    def __init__(self, *, backbone: Backbone, head: DBHead, postprocessor: DBPostProcessor,
                 pixel_mean: Tuple[float, ...], pixel_std: Tuple[float, ...], score_map_loss_weight: float = 1.0,
                 score_map_tau: float = 0.07, neg_ratio: float = 3.0, return_maps: bool = False):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.postprocessor = postprocessor
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)
        if self.pixel_mean.shape != self.pixel_std.shape:
            raise ValueError(f"PIXEL_MEAN {pixel_mean} and PIXEL_STD {pixel_std} differ in length")
        self.score_map_loss_weight = score_map_loss_weight
        self.score_map_tau = score_map_tau
        self.neg_ratio = neg_ratio
        self.return_maps = return_maps

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        f = cfg.MODEL.FASTTCM
        return {
            "backbone": backbone,
            "head": DBHead(cfg, backbone.output_shape()),
            "postprocessor": DBPostProcessor(cfg),
            "pixel_mean": tuple(cfg.MODEL.PIXEL_MEAN),
            "pixel_std": tuple(cfg.MODEL.PIXEL_STD),
            "score_map_loss_weight": float(f.get("SCORE_MAP_LOSS_WEIGHT", 1.0)),
            "score_map_tau": float(f.get("TAU", 0.07)),
            "neg_ratio": float(f.DB.NEG_RATIO),
            "return_maps": bool(cfg.TEST.FASTTCM.RETURN_MAPS),
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    # ---------------------------------------------------------------------------------------------------------
    def preprocess_image(self, batched_inputs: List[dict]) -> ImageList:
        """Normalize and pad the images to a multiple of the backbone's ``size_divisibility``."""
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def run_backbone(self, x: torch.Tensor):
        """``(features, aux)``; ``aux`` is empty for backbones without ``forward_with_aux``."""
        if hasattr(self.backbone, "forward_with_aux"):
            return self.backbone.forward_with_aux(x)
        return self.backbone(x), {}

    def forward(self, batched_inputs: List[dict]):
        images = self.preprocess_image(batched_inputs)
        features, aux = self.run_backbone(images.tensor)
        if self.training:
            return self.losses(batched_inputs, images, features, aux)
        return self.inference(batched_inputs, images, features, aux)

    def losses(self, batched_inputs, images: ImageList, features, aux) -> Dict[str, torch.Tensor]:
        if any("db_targets" not in x for x in batched_inputs):
            raise KeyError("TextDetector training needs 'db_targets' in every input (use TextDatasetMapper)")
        outputs = self.head(features)
        size = tuple(outputs["prob_logits"].shape[-2:])
        targets = pad_db_targets([x["db_targets"] for x in batched_inputs], size, self.device)
        losses = self.head.losses(outputs, targets)
        score_map = aux.get("score_map") if aux else None
        if score_map is not None and self.score_map_loss_weight > 0:
            from .losses import score_map_text_loss

            text, ignore = score_map_targets(targets["prob"], targets["prob_mask"], tuple(score_map.shape[-2:]))
            text = text.expand_as(score_map)
            losses["loss_score_map"] = self.score_map_loss_weight * score_map_text_loss(
                score_map, text, ignore, tau=self.score_map_tau, neg_ratio=self.neg_ratio)
        return losses

    @torch.no_grad()
    def inference(self, batched_inputs, images: ImageList, features, aux) -> List[dict]:
        outputs = self.head(features)
        prob = outputs["prob"][:, 0]
        score_map: Optional[torch.Tensor] = aux.get("score_map") if aux else None
        results = []
        for i, (x, (h, w)) in enumerate(zip(batched_inputs, images.image_sizes)):
            H0, W0 = int(x.get("height", h)), int(x.get("width", w))
            polys, scores = self.postprocessor(prob[i], (h, w), (H0, W0))
            inst = Instances((H0, W0))
            inst.pred_polygons = polys
            inst.scores = torch.as_tensor(scores, dtype=torch.float32)
            inst.pred_classes = torch.zeros(len(polys), dtype=torch.int64)
            inst.pred_boxes = Boxes(torch.as_tensor(polygons_to_boxes(polys)))
            out = {"instances": inst}
            if self.return_maps:
                p = prob[i, :h, :w][None, None]
                out["prob_map"] = F.interpolate(p, size=(H0, W0), mode="bilinear", align_corners=False)[0, 0].cpu()
                if score_map is not None:
                    s = images.tensor.shape[-1] // score_map.shape[-1]  # score-map stride (32)
                    out["score_map"] = score_map[i, :, : -(-h // s), : -(-w // s)].cpu()
            results.append(out)
        return results
