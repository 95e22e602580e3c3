"""``build_optimizer(cfg, model)``: FastTCM's training policy as optimizer parameter groups.

* Frozen parameters (``requires_grad=False``: CLIP's text encoder, stages frozen by ``MODEL.FASTTCM.FREEZE_AT``)
  are not given to the optimizer.
* Parameters of every :class:`~fasttcm.modeling.clip.CLIPImageEncoder` in the model (the CLIP ResNet and its
  attention pool) get ``SOLVER.BASE_LR * MODEL.FASTTCM.IMAGE_ENCODER_LR_FACTOR``; all others ``SOLVER.BASE_LR``.
* Weight decay ``SOLVER.WEIGHT_DECAY``, except: normalization layers' parameters use ``SOLVER.WEIGHT_DECAY_NORM``
  (Detectron2's default 0); biases use ``SOLVER.WEIGHT_DECAY_BIAS`` (Detectron2's key; None means
  ``SOLVER.WEIGHT_DECAY``, as in Detectron2); and embedding-like parameters get no decay: the decoders' gammas,
  the learnable context vectors, the meta-query and positional embeddings (decaying them would pull the residual
  scales and prompts toward zero rather than regularise a mapping).
* ``SOLVER.OPTIMIZER``: "AdamW" (betas 0.9/0.999) or "SGD" (``SOLVER.MOMENTUM``, ``SOLVER.NESTEROV``), wrapped by
  Detectron2's ``maybe_add_gradient_clipping`` (``SOLVER.CLIP_GRADIENTS``), made safe for parameters that got no
  gradient in a step.

Each group carries the lr/weight_decay it was built with, so Detectron2's LR schedulers scale all groups alike.
"""
from typing import Any, Dict, List

import torch
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.solver.build import maybe_add_gradient_clipping
from torch import nn

from .modeling.clip import CLIPImageEncoder

__all__ = ["build_optimizer", "get_fasttcm_param_groups", "NO_DECAY_NAMES"]

# parameter attribute names that never get weight decay
NO_DECAY_NAMES = ("gamma", "context", "meta_query", "positional_embedding")

# normalization layers with parameters (Detectron2's FrozenBatchNorm2d holds buffers only)
_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def get_fasttcm_param_groups(model: nn.Module, base_lr: float, weight_decay: float, weight_decay_norm: float,
                             weight_decay_bias: float, image_encoder_lr_factor: float) -> List[Dict[str, Any]]:
    """Parameter groups per the module docstring: a list of {"params", "lr", "weight_decay"} dicts.

    Each trainable parameter appears once (shared parameters are counted at their first owner).
    """
    image_params = set()
    for m in model.modules():
        if isinstance(m, CLIPImageEncoder):
            image_params.update(id(p) for p in m.parameters())
    groups: Dict[tuple, List[nn.Parameter]] = {}
    seen = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            lr = base_lr * (image_encoder_lr_factor if id(p) in image_params else 1.0)
            if isinstance(module, _NORM_TYPES):
                wd = weight_decay_norm
            elif name in NO_DECAY_NAMES:
                wd = 0.0
            elif name == "bias":
                wd = weight_decay_bias
            else:
                wd = weight_decay
            groups.setdefault((lr, wd), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def _with_gradient_clipping(cfg, optimizer_cls):
    """Detectron2's ``maybe_add_gradient_clipping``, made safe for parameters without a gradient.

    Detectron2 0.6 clips every parameter of every group; recent PyTorch raises on clipping a parameter whose
    ``grad`` is None (one unused in a step). The class Detectron2 creates (a fresh one per call) gets a ``step``
    that hides such parameters from its clipping step (the optimizer skips them anyway), then restores the groups.
    """
    clipped = maybe_add_gradient_clipping(cfg, optimizer_cls)
    if clipped is optimizer_cls:
        return optimizer_cls
    clipping_step = clipped.step

    def step(self, closure=None):
        saved = [g["params"] for g in self.param_groups]
        for g in self.param_groups:
            g["params"] = [p for p in g["params"] if p.grad is not None]
        try:
            return clipping_step(self, closure)
        finally:
            for g, ps in zip(self.param_groups, saved):
                g["params"] = ps

    clipped.step = step
    return clipped


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer of ``cfg.SOLVER.OPTIMIZER`` over :func:`get_fasttcm_param_groups` of ``model``."""
    s = cfg.SOLVER
    wd_bias = s.WEIGHT_DECAY if s.WEIGHT_DECAY_BIAS is None else s.WEIGHT_DECAY_BIAS
    groups = get_fasttcm_param_groups(
        model, s.BASE_LR, s.WEIGHT_DECAY, s.WEIGHT_DECAY_NORM, wd_bias, cfg.MODEL.FASTTCM.IMAGE_ENCODER_LR_FACTOR)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    name = str(s.OPTIMIZER).lower()
    if name == "adamw":
        return _with_gradient_clipping(cfg, torch.optim.AdamW)(groups, lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY)
    if name == "sgd":
        return _with_gradient_clipping(cfg, torch.optim.SGD)(
            groups, lr=s.BASE_LR, momentum=s.MOMENTUM, nesterov=s.NESTEROV, weight_decay=s.WEIGHT_DECAY)
    raise ValueError(f"SOLVER.OPTIMIZER must be 'AdamW' or 'SGD', got {s.OPTIMIZER!r}")
