"""DB (Differentiable Binarization, Liao et al., AAAI 2020) head and its losses.

Architecture (:class:`DBHead`)
------------------------------
FPN levels ``IN_FEATURES`` (default p2..p5, strides 4..32) -> each a 3x3 conv to ``INNER_CHANNELS`` (64) ->
nearest upsampling to the finest level's grid (1/4) -> concatenation (4 x 64 = 256 channels) -> two branches of
identical structure:

    conv3x3(256 -> 64) - norm - ReLU - [ConvTranspose2d(x2) - norm - ReLU] x (n - 1) - ConvTranspose2d(x2, -> 1)

with ``n = log2(finest stride)`` (2 for stride 4), so both maps come out at the full (padded) input resolution.
The probability branch gives logits (P = sigmoid(logits)); the threshold branch ends with a sigmoid (T in [0, 1]).
The approximate binary map is ``B = 1 / (1 + exp(-k (P - T)))`` with ``k = 50``.

Losses (:meth:`DBHead.losses`), all with don't-care pixels masked out
-------------------------------------------------------------------
* ``loss_db_prob``   = ``PROB_LOSS_WEIGHT`` (5) x balanced BCE on P with 3:1 hard negatives
  (:func:`balanced_bce_loss`);
* ``loss_db_binary`` = ``BINARY_LOSS_WEIGHT`` (1) x dice loss on B (:func:`dice_loss`);
* ``loss_db_thresh`` = ``THRESH_LOSS_WEIGHT`` (10) x L1 on T inside the dilated text (:func:`masked_l1_loss`).
"""
from __future__ import annotations

import math
from typing import Dict, List

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec, get_norm
from torch import nn

__all__ = ["DBHead", "balanced_bce_loss", "dice_loss", "masked_l1_loss", "approximate_binary_map"]


# ------------------------------------------------------------------------------------------------ losses ----
def balanced_bce_loss(logits: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, neg_ratio: float = 3.0,
                      eps: float = 1e-6) -> torch.Tensor:
    """Balanced binary cross-entropy with hard-negative mining, over the whole batch.

    Args:
        logits: (B, 1, H, W) or (B, H, W) logits of P.
        gt: same shape, 1 = text (shrunk), 0 = background.
        mask: same shape, 1 where the loss applies (0 on don't care).
        neg_ratio: at most ``neg_ratio`` x (number of positives) negatives are used: those with the largest BCE.
    Returns:
        scalar ``(sum BCE over positives + sum BCE over the kept negatives) / (n_pos + n_neg + eps)``; a batch
        without positive pixels uses no negatives and gives 0.
    """
    pos = (gt * mask) > 0.5
    neg = ((1 - gt) * mask) > 0.5
    n_pos = int(pos.sum())
    n_neg = min(int(neg.sum()), int(n_pos * neg_ratio))
    bce = F.binary_cross_entropy_with_logits(logits, gt.to(logits.dtype), reduction="none")
    pos_loss = bce[pos].sum()
    neg_loss = torch.topk(bce[neg], n_neg).values.sum() if n_neg > 0 else bce.sum() * 0.0
    return (pos_loss + neg_loss) / (n_pos + n_neg + eps)


def dice_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``1 - 2 sum(pred gt mask) / (sum(pred mask) + sum(gt mask) + eps)`` over the batch (scalar)."""
    inter = (pred * gt * mask).sum()
    union = (pred * mask).sum() + (gt * mask).sum() + eps
    return 1.0 - 2.0 * inter / union


def masked_l1_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean absolute error over the pixels where ``mask`` is 1: ``sum(|pred - gt| mask) / (sum(mask) + eps)``."""
    return (torch.abs(pred - gt) * mask).sum() / (mask.sum() + eps)


def approximate_binary_map(prob: torch.Tensor, thresh: torch.Tensor, k: float = 50.0) -> torch.Tensor:
    """DB's differentiable binarization ``1 / (1 + exp(-k (P - T)))`` (same shape as the inputs)."""
    return torch.sigmoid(k * (prob - thresh))


# -------------------------------------------------------------------------------------------------- head ----
def _conv_norm_relu(cin: int, cout: int, norm: str) -> List[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=not norm), get_norm(norm, cout) or nn.Identity(),
            nn.ReLU(inplace=True)]


def _branch(cin: int, inner: int, n_up: int, norm: str) -> nn.Sequential:
    layers = _conv_norm_relu(cin, inner, norm)
    for _ in range(n_up - 1):
        layers += [nn.ConvTranspose2d(inner, inner, 2, stride=2, bias=not norm),
                   get_norm(norm, inner) or nn.Identity(), nn.ReLU(inplace=True)]
    layers.append(nn.ConvTranspose2d(inner, 1, 2, stride=2) if n_up > 0 else nn.Conv2d(inner, 1, 1))
    return nn.Sequential(*layers)


class DBHead(nn.Module):
    """Probability and threshold maps from FPN features (see module docstring).

    ``forward(features)`` returns a dict:
        ``prob_logits`` (B, 1, H, W), ``prob`` (B, 1, H, W) = sigmoid(prob_logits), and in training (or with
        ``return_thresh=True``) ``thresh`` (B, 1, H, W) and ``binary`` (B, 1, H, W); H, W = finest stride x the
        finest feature map's size (the padded input size).
    """

    @configurable
    def __init__(self, input_shape: Dict[str, ShapeSpec], *, in_features: List[str], inner_channels: int = 64,
                 norm: str = "BN", k: float = 50.0, neg_ratio: float = 3.0, prob_weight: float = 5.0,
                 binary_weight: float = 1.0, thresh_weight: float = 10.0):
        super().__init__()
        missing = [f for f in in_features if f not in input_shape]
        if missing:
            raise ValueError(f"DB head needs features {missing} but the backbone gives {sorted(input_shape)}; "
                             f"set MODEL.FASTTCM.DB.IN_FEATURES")
        self.in_features = list(in_features)
        strides = [input_shape[f].stride for f in self.in_features]
        self.out_stride = min(strides)
        n_up = int(round(math.log2(self.out_stride)))
        if 2 ** n_up != self.out_stride:
            raise ValueError(f"finest DB input stride must be a power of 2, got {self.out_stride}")
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(input_shape[f].channels, inner_channels, 3, padding=1, bias=not norm),
                          get_norm(norm, inner_channels) or nn.Identity(), nn.ReLU(inplace=True))
            for f in self.in_features)
        fused = inner_channels * len(self.in_features)
        self.prob_branch = _branch(fused, inner_channels, n_up, norm)
        self.thresh_branch = _branch(fused, inner_channels, n_up, norm)
        self.k = k
        self.neg_ratio = neg_ratio
        self.weights = {"prob": prob_weight, "binary": binary_weight, "thresh": thresh_weight}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        db = cfg.MODEL.FASTTCM.DB
        return {"input_shape": input_shape, "in_features": list(db.IN_FEATURES),
                "inner_channels": db.INNER_CHANNELS, "norm": db.NORM, "k": db.K, "neg_ratio": db.NEG_RATIO,
                "prob_weight": db.PROB_LOSS_WEIGHT, "binary_weight": db.BINARY_LOSS_WEIGHT,
                "thresh_weight": db.THRESH_LOSS_WEIGHT}

    def fuse(self, features: Dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, len(in_features) x inner, H/s, W/s) fused features at the finest input stride ``s``."""
        xs = [lat(features[f]) for f, lat in zip(self.in_features, self.lateral)]
        size = max((x.shape[-2:] for x in xs), key=lambda s: s[0] * s[1])
        xs = [x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="nearest") for x in xs]
        return torch.cat(xs, dim=1)

    def forward(self, features: Dict[str, torch.Tensor], return_thresh: bool = False) -> Dict[str, torch.Tensor]:
        fused = self.fuse(features)
        logits = self.prob_branch(fused)
        out = {"prob_logits": logits, "prob": torch.sigmoid(logits)}
        if self.training or return_thresh:
            thresh = torch.sigmoid(self.thresh_branch(fused))
            out["thresh"] = thresh
            out["binary"] = approximate_binary_map(out["prob"], thresh, self.k)
        return out

    def losses(self, outputs: Dict[str, torch.Tensor], targets: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """DB losses.

        Args:
            outputs: from :meth:`forward` in training mode.
            targets: (B, H, W) float tensors ``prob``, ``prob_mask``, ``thresh``, ``thresh_mask`` at the output
                resolution (see :mod:`fasttcm.data.db_targets`).
        Returns:
            ``loss_db_prob``, ``loss_db_binary``, ``loss_db_thresh`` (already weighted).
        """
        gt, mask = targets["prob"].unsqueeze(1), targets["prob_mask"].unsqueeze(1)
        tgt, tmask = targets["thresh"].unsqueeze(1), targets["thresh_mask"].unsqueeze(1)
        if gt.shape[-2:] != outputs["prob_logits"].shape[-2:]:
            raise ValueError(f"DB targets {tuple(gt.shape[-2:])} do not match the head's output "
                             f"{tuple(outputs['prob_logits'].shape[-2:])}")
        return {
            "loss_db_prob": self.weights["prob"] * balanced_bce_loss(outputs["prob_logits"], gt, mask,
                                                                     self.neg_ratio),
            "loss_db_binary": self.weights["binary"] * dice_loss(outputs["binary"], gt, mask),
            "loss_db_thresh": self.weights["thresh"] * masked_l1_loss(outputs["thresh"], tgt, tmask),
        }
