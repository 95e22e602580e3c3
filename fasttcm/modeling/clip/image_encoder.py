"""CLIP's ModifiedResNet as a multi-scale image encoder, with a dense attention pool.

``CLIPImageEncoder`` wraps an open_clip ``ModifiedResNet`` (kept whole as ``self.visual``, so its parameter names
are CLIP's ``visual.*`` names) and returns Detectron2-style feature maps res2..res5. Its :meth:`pool` runs CLIP's
attention pool on res5 at any grid size, with the learned positional embedding resized bicubically from CLIP's
pre-training grid (7x7 for RN50) to the feature grid.
"""
import logging
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from open_clip.modified_resnet import ModifiedResNet
from torch import nn

from ..param_cache import ParameterCache, gradient_needed

__all__ = ["CLIPImageEncoder", "fold_linear", "resize_attnpool_positional_embedding"]

logger = logging.getLogger(__name__)

_STAGES = ("res2", "res3", "res4", "res5")
DENSE_POOL_MODES = ("value", "attention")


def resize_attnpool_positional_embedding(pos: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resize CLIP's attention-pool positional embedding to an ``h`` x ``w`` grid.

    Args:
        pos: (1 + s*s, C): the embedding of the pooled (mean) token followed by an s x s grid, row-major.
    Returns:
        (1 + h*w, C): the first row unchanged, the grid resized with bicubic interpolation (align_corners=False).
    """
    n, c = pos.shape
    s = int(round((n - 1) ** 0.5))
    if s * s != n - 1:
        raise ValueError(f"attention-pool positional embedding of {n} rows is not 1 + a square grid")
    if (h, w) == (s, s):
        return pos
    grid = pos[1:].reshape(1, s, s, c).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
    return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, c)], dim=0)


class CLIPImageEncoder(nn.Module):
    """CLIP ModifiedResNet returning res2..res5 (strides 4, 8, 16, 32) and, on demand, the attention pool.

    For RN50: 3-conv stem, bottleneck stages [3, 4, 6, 3] with 256/512/1024/2048 output channels; the attention
    pool maps res5 (2048 channels) to CLIP's 1024-d embedding space.

    Args:
        visual: an open_clip ``ModifiedResNet`` (its weights are used as they are).
        with_pool: keep the attention pool (False drops it: mode ``baseline`` needs no embeddings).
        norm: "FrozenBN" (BatchNorm statistics and affine fixed: Detectron2's usual choice for small batches),
            "BN" (trainable, batch statistics in training) or "SyncBN".
        freeze_at: 0 trains everything; k >= 1 sets requires_grad=False on the stem (1) and res2..res{k}.
        dense_pool: how :meth:`pool` makes the dense embedding, see there.
    """

    def __init__(self, visual: ModifiedResNet, with_pool: bool = True, norm: str = "FrozenBN",
                 freeze_at: int = 0, dense_pool: str = "value"):
        super().__init__()
        if not isinstance(visual, ModifiedResNet):
            raise TypeError(f"CLIPImageEncoder needs an open_clip ModifiedResNet, got {type(visual).__name__}")
        if not with_pool:
            visual.attnpool = None
        self.visual = _convert_norm(visual, norm)
        if with_pool:  # saved with the weights, so a checkpoint is not silently run with the other dense pool
            self.register_buffer("dense_pool_id", torch.tensor(0))
        self.dense_pool = dense_pool
        self._value_fold = ParameterCache()  # folded value path, see _value_path
        self._resized_pos = ParameterCache()  # positional embedding at the last grid size, see _positional_embedding
        width = visual.conv3.out_channels  # stem width (64 for RN50)
        self._channels = {name: width * 4 * 2 ** i for i, name in enumerate(_STAGES)}
        self._strides = {name: 4 * 2 ** i for i, name in enumerate(_STAGES)}
        self.embed_dim = visual.output_dim if with_pool else 0
        self._freeze(freeze_at)

    @property
    def dense_pool(self) -> str:
        """How :meth:`pool` makes the dense embedding: one of ``DENSE_POOL_MODES`` (saved in the state dict)."""
        return self._dense_pool

    @dense_pool.setter
    def dense_pool(self, mode: str):
        if mode not in DENSE_POOL_MODES:
            raise ValueError(f"dense_pool must be one of {DENSE_POOL_MODES}, got {mode!r}")
        self._dense_pool = mode
        if hasattr(self, "dense_pool_id"):
            self.dense_pool_id.fill_(DENSE_POOL_MODES.index(mode))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Refuse weights trained with the other dense pool; warn when a checkpoint does not say which it had.
        Drops the inference caches (also kept valid by version counters; this covers ``assign=True`` loads)."""
        self._value_fold.clear()
        self._resized_pos.clear()
        key = prefix + "dense_pool_id"
        if hasattr(self, "dense_pool_id"):
            if key in state_dict:
                saved = int(state_dict[key])
                if not 0 <= saved < len(DENSE_POOL_MODES):
                    raise ValueError(f"checkpoint entry {key} = {saved} names no dense pool of {DENSE_POOL_MODES}")
                if DENSE_POOL_MODES[saved] != self.dense_pool:
                    raise ValueError(
                        f"the checkpoint's image encoder was trained with MODEL.FASTTCM.DENSE_POOL "
                        f"{DENSE_POOL_MODES[saved]!r}, but this model uses {self.dense_pool!r}: their dense embeddings "
                        f"differ, so set MODEL.FASTTCM.DENSE_POOL {DENSE_POOL_MODES[saved]} to use these weights")
            elif any(k.startswith(prefix + "visual.attnpool.") for k in state_dict):
                logger.warning(
                    "the checkpoint does not record its dense pool (%s missing); using MODEL.FASTTCM.DENSE_POOL %r. "
                    "Checkpoints made before that key existed (fasttcm before 2026-11-30) used 'attention'.",
                    key, self.dense_pool)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ------------------------------------------------------------------------------------------ trunk --
    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {k: ShapeSpec(channels=self._channels[k], stride=self._strides[k]) for k in _STAGES}

    def _freeze(self, freeze_at: int):
        blocks = [self.visual.conv1, self.visual.bn1, self.visual.conv2, self.visual.bn2, self.visual.conv3,
                  self.visual.bn3], [self.visual.layer1], [self.visual.layer2], [self.visual.layer3], [
            self.visual.layer4]
        if not 0 <= freeze_at <= len(blocks):
            raise ValueError(f"FREEZE_AT must be in 0..{len(blocks)}, got {freeze_at}")
        for group in blocks[:freeze_at]:
            for m in group:
                for p in m.parameters():
                    p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, 3, H, W) normalized images -> {"res2": (B, 4w, H/4, W/4), ..., "res5": (B, 32w, H/32, W/32)}."""
        v = self.visual
        x = v.stem(x)
        out = {}
        for name, layer in zip(_STAGES, (v.layer1, v.layer2, v.layer3, v.layer4)):
            x = layer(x)
            out[name] = x
        return out

    # ------------------------------------------------------------------------------ attention pool --
    def pool(self, res5: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """CLIP's attention pool on a res5 map of any size.

        The tokens are [mean of res5; every res5 pixel] plus the resized positional embedding. The global
        embedding g is the pooled token's attention output, exactly CLIP's image embedding when the grid is CLIP's
        own (7x7 for RN50 at 224 px). The dense embedding I is, per ``dense_pool``:

        * ``"value"`` (default): the value path only, c_proj(v_proj(token)) per pixel (MaskCLIP style). Both
          projections are linear, so without gradients they run as one folded E x C5 matrix, computed once and
          cached like FastTCM's text embeddings; g is computed without projecting every key and value.
        * ``"attention"``: every pixel token's output of the same multi-head attention (each pixel attends to all
          tokens), as the DenseCLIP/TCM reference code does: three C5 x C5 projections of every pixel besides
          c_proj, about 2.3x the multiply-adds of the unfolded value path and 7x those of the folded one.

        Args:
            res5: (B, C5, h, w), C5 = 2048 for RN50.
        Returns:
            g: (B, E) and I: (B, E, h, w), E = CLIP embedding width (1024 for RN50).
        """
        ap = self.visual.attnpool
        if ap is None:
            raise RuntimeError("this image encoder was built without its attention pool (mode 'baseline')")
        b, c, h, w = res5.shape
        tokens = res5.flatten(2).transpose(1, 2)  # (B, hw, C5)
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        tokens = tokens + self._positional_embedding(ap, h, w).to(tokens.dtype)
        if self.dense_pool == "attention":
            heads = ap.num_heads
            d = c // heads
            q, k, v = (proj(tokens).view(b, -1, heads, d).transpose(1, 2)  # (B, heads, 1+hw, d)
                       for proj in (ap.q_proj, ap.k_proj, ap.v_proj))
            out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, 1+hw, d)
            out = ap.c_proj(out.transpose(1, 2).reshape(b, -1, c))  # (B, 1+hw, E)
            g, dense = out[:, 0], out[:, 1:]
        else:
            g = ap.c_proj(self._pooled_token_attention(ap, tokens))
            dense = self._value_path(ap, tokens[:, 1:])
        dense = dense.transpose(1, 2).reshape(b, -1, h, w)
        return g, dense

    def _positional_embedding(self, ap, h: int, w: int) -> torch.Tensor:
        """(1 + h*w, C5): the pool's positional embedding resized to the grid; cached for the last grid size when
        no gradient must reach it (bicubic resizing of 2048 channels costs a few ms per image on a CPU)."""
        pos = ap.positional_embedding
        if gradient_needed((pos,)):
            return resize_attnpool_positional_embedding(pos, h, w)
        return self._resized_pos.get((pos,), lambda: resize_attnpool_positional_embedding(pos, h, w), extra=(h, w))

    @staticmethod
    def _pooled_token_attention(ap, tokens: torch.Tensor) -> torch.Tensor:
        """Attention output (before c_proj) of the pooled token alone, without projecting every key or value.

        Per head, q0 . (W_k x + b_k) = (W_k^T q0) . x + q0 . b_k, so the keys' projection folds into the query;
        and since the attention weights a sum to 1, sum_n a_n (W_v x_n + b_v) = W_v (sum_n a_n x_n) + b_v, so the
        values' projection applies to one weighted token per head. tokens: (B, N, C). Returns (B, C).
        """
        b, n, c = tokens.shape
        heads = ap.num_heads
        d = c // heads
        q0 = ap.q_proj(tokens[:, 0]).view(b, heads, d) * d ** -0.5
        u = torch.einsum("bhd,hdc->bhc", q0, ap.k_proj.weight.view(heads, d, c))
        logits = torch.einsum("bhc,bnc->bhn", u, tokens) + (q0 * ap.k_proj.bias.view(heads, d)).sum(-1, keepdim=True)
        pooled = torch.einsum("bhn,bnc->bhc", logits.softmax(dim=-1), tokens)  # (B, heads, C)
        v = torch.einsum("bhc,hdc->bhd", pooled, ap.v_proj.weight.view(heads, d, c)) + ap.v_proj.bias.view(heads, d)
        return v.reshape(b, c)

    def _value_path(self, ap, pixels: torch.Tensor) -> torch.Tensor:
        """c_proj(v_proj(pixels)): (B, hw, C5) -> (B, hw, E).

        When a gradient must reach the projections it runs them one after the other; otherwise it applies the
        folded map W = W_c W_v, b = W_c b_v + b_c (E x C5), kept in a :class:`ParameterCache`, so it is
        recomputed only after the projections change (training step, weight loading, ``.to()``).
        """
        params = (ap.v_proj.weight, ap.v_proj.bias, ap.c_proj.weight, ap.c_proj.bias)
        if gradient_needed(params):
            return ap.c_proj(ap.v_proj(pixels))
        weight, bias = self._value_fold.get(params, lambda: fold_linear(ap.v_proj, ap.c_proj))
        return F.linear(pixels, weight.to(pixels.dtype), bias.to(pixels.dtype))


def fold_linear(first: nn.Linear, second: nn.Linear) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight (out2, in1) and bias (out2,) of ``second(first(x))`` as one linear map, accumulated in float32."""
    w1, w2 = first.weight.float(), second.weight.float()
    b1 = first.bias.float() if first.bias is not None else torch.zeros(w1.shape[0], device=w1.device)
    b2 = second.bias.float() if second.bias is not None else torch.zeros(w2.shape[0], device=w2.device)
    return (w2 @ w1).to(first.weight.dtype), (w2 @ b1 + b2).to(first.weight.dtype)


def _convert_norm(module: nn.Module, norm: str) -> nn.Module:
    if norm == "FrozenBN":
        return FrozenBatchNorm2d.convert_frozen_batchnorm(module)
    if norm == "SyncBN":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if norm == "BN":
        return module
    raise ValueError(f"MODEL.FASTTCM.NORM must be 'FrozenBN', 'BN' or 'SyncBN', got {norm!r}")
