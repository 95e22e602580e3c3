"""Auxiliary losses on the FastTCM score map S (B, K, h, w), cosine similarities in [-1, 1].

Both losses apply binary cross-entropy to the logits S / tau (tau = ``MODEL.FASTTCM.TAU``, 0.07). Targets live at
the score map's resolution (h, w) = (H/32, W/32) of the padded batch: :func:`downsample_mask` brings full-resolution
masks there.
"""
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["score_map_text_loss", "score_map_class_loss", "downsample_mask"]


def _broadcast_mask(mask: Optional[torch.Tensor], like: torch.Tensor, name: str) -> Optional[torch.Tensor]:
    """(B, h, w), (B, 1, h, w) or (B, K, h, w) bool-like mask -> bool tensor broadcast to ``like`` (B, K, h, w)."""
    if mask is None:
        return None
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.dim() != 4:
        raise ValueError(f"{name} must be (B, h, w), (B, 1, h, w) or (B, K, h, w), got {tuple(mask.shape)}")
    try:
        return torch.broadcast_to(mask.to(device=like.device, dtype=torch.bool), like.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(mask.shape)} does not match the score map {tuple(like.shape)}")


def _check_target(score_map: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if score_map.dim() != 4:
        raise ValueError(f"score_map must be (B, K, h, w), got {tuple(score_map.shape)}")
    if target.dim() == 3:
        target = target.unsqueeze(1)
    if target.shape != score_map.shape:
        raise ValueError(f"target {tuple(target.shape)} must match the score map {tuple(score_map.shape)} "
                         f"(downsample full-resolution masks with downsample_mask)")
    return target.to(device=score_map.device, dtype=score_map.dtype)


def score_map_text_loss(score_map: torch.Tensor, target: torch.Tensor, ignore_mask: Optional[torch.Tensor] = None,
                        tau: float = 0.07, neg_ratio: float = 3.0) -> torch.Tensor:
    """Balanced BCE with hard-negative mining (DB style), over the whole batch.

    Args:
        score_map: (B, K, h, w) cosine similarities S.
        target: (B, K, h, w) (or (B, h, w) for K = 1) text mask; cells with target >= 0.5 are positives, the rest
            negatives (soft values are used as BCE targets as they are).
        ignore_mask: optional (B, h, w) / (B, 1, h, w) / (B, K, h, w); True cells take no part (e.g. ``###``).
        tau: temperature, logits = S / tau.
        neg_ratio: at most ``neg_ratio`` x (number of positives) negatives are kept: those with the largest loss.
    Returns:
        scalar: (sum of positive BCE + sum of the kept negatives' BCE) / (positives + kept negatives).
        A batch without positives keeps no negatives and gives 0 (as DB's balanced loss does).
    """
    target = _check_target(score_map, target)
    bce = F.binary_cross_entropy_with_logits(score_map / tau, target, reduction="none")
    valid = _broadcast_mask(ignore_mask, score_map, "ignore_mask")
    valid = torch.ones_like(bce, dtype=torch.bool) if valid is None else ~valid
    pos = (target >= 0.5) & valid
    neg = (target < 0.5) & valid
    num_pos = int(pos.sum())
    num_neg = min(int(neg.sum()), int(num_pos * neg_ratio))
    neg_loss = torch.topk(bce[neg], num_neg).values if num_neg > 0 else bce.new_zeros(0)
    total = bce[pos].sum() + neg_loss.sum()
    if num_pos + num_neg == 0:
        return score_map.sum() * 0.0
    return total / (num_pos + num_neg)


def score_map_class_loss(score_map: torch.Tensor, target: torch.Tensor, valid_mask: Optional[torch.Tensor] = None,
                         tau: float = 0.07) -> torch.Tensor:
    """Masked per-class BCE (e.g. rasterised rotated boxes of K classes).

    Args:
        score_map: (B, K, h, w) cosine similarities S.
        target: (B, K, h, w) in [0, 1]: 1 where class k is present (soft coverage fractions allowed).
        valid_mask: optional (B, h, w) / (B, 1, h, w) / (B, K, h, w); only True cells count (e.g. the part of
            the padded map that lies over the image). Default: all cells.
        tau: temperature, logits = S / tau.
    Returns:
        scalar: mean BCE over the valid cells of all classes; 0 when none is valid.
    """
    target = _check_target(score_map, target)
    bce = F.binary_cross_entropy_with_logits(score_map / tau, target, reduction="none")
    valid = _broadcast_mask(valid_mask, score_map, "valid_mask")
    if valid is None:
        return bce.mean()
    n = int(valid.sum())
    if n == 0:
        return score_map.sum() * 0.0
    return bce[valid].sum() / n


def downsample_mask(mask: torch.Tensor, stride: int = 32, mode: str = "area") -> torch.Tensor:
    """Bring a full-resolution mask to a feature map's resolution.

    Args:
        mask: (B, H, W) or (B, K, H, W), bool or float in [0, 1].
        stride: the feature map's stride (32 for the score map).
        mode: "area": fraction of each stride x stride cell covered (average); "max": 1 if any pixel is set.
    Returns:
        float tensor (B, [K,] ceil(H/stride), ceil(W/stride)); cells reaching past the border count the missing
        pixels as 0.
    """
    if mode not in ("area", "max"):
        raise ValueError(f"mode must be 'area' or 'max', got {mode!r}")
    squeeze = mask.dim() == 3
    x = mask.unsqueeze(1) if squeeze else mask
    if x.dim() != 4:
        raise ValueError(f"mask must be (B, H, W) or (B, K, H, W), got {tuple(mask.shape)}")
    x = x.float()
    h, w = x.shape[-2:]
    x = F.pad(x, (0, (-w) % stride, 0, (-h) % stride))
    x = F.avg_pool2d(x, stride) if mode == "area" else F.max_pool2d(x, stride)
    return x.squeeze(1) if squeeze else x
