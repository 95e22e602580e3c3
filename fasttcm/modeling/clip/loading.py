"""Building open_clip CLIP ResNets by name and loading their weights (hub tag, local file or random).

Supported architectures are open_clip's CLIP ResNets (``RN50``, ``RN101``, ``RN50x4``, ``RN50x16``, ``RN50x64``
and their ``-quickgelu`` twins) plus ``tiny-test``: the same architecture (ModifiedResNet + attention pool + text
transformer) with a few channels and layers, for tests and quick experiments. :func:`available_clip_names` lists
them.

Weight sources (``weights`` argument, config key ``MODEL.FASTTCM.CLIP.WEIGHTS``):

* ``""``: random initialisation (open_clip's). Never touches the network.
* an open_clip pretrained tag such as ``"openai"``: ``open_clip.create_model(name, pretrained=tag)``, which
  downloads the weights (network needed: it is the only path that uses it).
* a path to a local file, read with :func:`read_clip_state_dict`:
  OpenAI's TorchScript archive (``RN50.pt``), an open_clip checkpoint (plain state dict, or a dict holding
  ``state_dict``), or a file written by ``tools/convert_clip_weights.py``. Every file goes through
  :mod:`fasttcm.checkpoint`: plain files with ``torch.load(..., weights_only=True)``, a TorchScript archive with
  :func:`~fasttcm.checkpoint.read_torchscript_state_dict`, which reads its tensors without running its code.

Activation: every released CLIP ResNet checkpoint (OpenAI's and all open_clip ResNet tags) was trained with
QuickGELU in its text transformer, so ``quick_gelu=True`` is the default; it is forced on (with a warning when the
caller asked otherwise) for weights known to come from OpenAI. (The image tower uses ReLU only.)
"""
import logging
import os
from copy import deepcopy
from typing import Dict, List, Tuple

import open_clip
import torch
from open_clip.modified_resnet import ModifiedResNet
from torch import nn

from ...checkpoint import is_torchscript_archive, read_checkpoint_file, read_torchscript_state_dict

logger = logging.getLogger(__name__)

__all__ = [
    "CLIP_PIXEL_MEAN",
    "CLIP_PIXEL_STD",
    "TINY_CLIP_NAME",
    "TINY_CLIP_CONFIG",
    "OPENAI_METADATA_KEYS",
    "available_clip_names",
    "clip_model_config",
    "read_clip_state_dict",
    "build_clip_model",
    "build_clip_visual",
    "check_state_dict_fits",
    "clip_state_dict_for_export",
]

# CLIP's image normalisation in Detectron2's units: RGB, 0-255 (OpenAI's mean/std on [0, 1] times 255).
CLIP_PIXEL_MEAN = [v * 255.0 for v in open_clip.OPENAI_DATASET_MEAN]
CLIP_PIXEL_STD = [v * 255.0 for v in open_clip.OPENAI_DATASET_STD]

TINY_CLIP_NAME = "tiny-test"
# Same architecture as RN50 (3-conv stem, 4 bottleneck stages, attention pool, causal text transformer with
# CLIP's BPE vocabulary) with few channels/layers. Channels of res2..res5: 32, 64, 128, 256; embedding 64;
# text width 64 (1 head: OpenAI's layout implies 64-wide heads, so its state dicts rebuild the same model).
# image_size 64 gives a 2x2 attention-pool grid, so the bicubic resize is always exercised.
TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 64, "patch_size": None},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}

# Keys that OpenAI's checkpoints carry besides the weights; their presence marks OpenAI-trained weights.
OPENAI_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


def _is_resnet_config(cfg: dict) -> bool:
    vision = cfg.get("vision_cfg", {})
    return isinstance(vision.get("layers"), (list, tuple)) and not vision.get("timm_model_name")


def available_clip_names() -> List[str]:
    """Names accepted by :func:`clip_model_config`: open_clip's CLIP ResNets and ``"tiny-test"``."""
    names = [n for n in open_clip.list_models() if _is_resnet_config(open_clip.get_model_config(n) or {})]
    return sorted(names) + [TINY_CLIP_NAME]


def clip_model_config(name: str) -> dict:
    """The open_clip model config dict (``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``) of ``name``.

    Raises ``ValueError`` naming the available CLIP ResNets for an unknown name or a non-ResNet model (ViTs have
    no multi-scale feature maps to feed an FPN).
    """
    if name == TINY_CLIP_NAME:
        return deepcopy(TINY_CLIP_CONFIG)
    cfg = open_clip.get_model_config(name)
    if cfg is None or not _is_resnet_config(cfg):
        kind = "not a CLIP ResNet" if cfg is not None else "unknown"
        raise ValueError(
            f"CLIP model {name!r} is {kind}; MODEL.FASTTCM.CLIP.NAME must be one of {available_clip_names()}")
    return cfg


def read_clip_state_dict(path: str) -> Tuple[Dict[str, torch.Tensor], bool]:
    """Read CLIP weights from a local file into an open_clip ``CLIP`` state dict (float32, CPU).

    Accepts OpenAI's TorchScript archive, a plain state dict (OpenAI / open_clip layout, which are the same for
    ResNets), a dict holding one under ``"state_dict"`` or ``"model"``, keys prefixed with ``module.``, and keys
    of open_clip's custom-text layout (``text.*``), which are mapped back.

    Returns ``(state_dict, from_openai)``; ``from_openai`` is True for a TorchScript archive or a state dict that
    carries OpenAI's metadata keys (``input_resolution``, ``context_length``, ``vocab_size``), which are removed.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CLIP weights file not found: {path}")
    if is_torchscript_archive(path):
        sd = read_torchscript_state_dict(path)
        from_openai = True
    else:
        obj = read_checkpoint_file(path)
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            obj = obj["model"]
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected a state dict (mapping of names to tensors), got {type(obj).__name__}")
        sd = dict(obj)
        from_openai = any(k in sd for k in OPENAI_METADATA_KEYS)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if any(k.startswith("text.") for k in sd):  # open_clip CustomTextCLIP layout -> CLIP layout
        sd = {k[len("text."):] if k.startswith("text.") else k: v for k, v in sd.items()}
    for k in OPENAI_METADATA_KEYS:
        sd.pop(k, None)
    bad = [k for k, v in sd.items() if not torch.is_tensor(v)]
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {bad[:10]}")
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, from_openai


def check_state_dict_fits(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str, hint: str = "",
                          prefix: str = ""):
    """Raise ``ValueError`` naming missing, unexpected and wrongly shaped keys when ``state_dict`` does not fit.

    ``prefix`` is prepended to the key names in the message (e.g. ``visual.`` when checking the image tower).
    """
    expected = {prefix + k: v for k, v in model.state_dict().items()}
    state_dict = {prefix + k: v for k, v in state_dict.items()}
    # BatchNorm fills a missing num_batches_tracked itself (OpenAI's checkpoints may lack it)
    missing = sorted(k for k in set(expected) - set(state_dict) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict) if state_dict[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        def show(items):
            return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "") or "none"
        raise ValueError(
            f"weights in {source} do not fit the model{hint}: missing keys: {show(missing)}; "
            f"unexpected keys: {show(unexpected)}; shape mismatches: {show(shapes)}")


def _resolve_quick_gelu(name: str, cfg: dict, quick_gelu: bool, from_openai: bool) -> bool:
    """The caller's choice, except that OpenAI weights and ``*-quickgelu`` names always get QuickGELU."""
    if (from_openai or cfg.get("quick_gelu", False)) and not quick_gelu:
        logger.warning("CLIP %s: %s QuickGELU; using it despite quick_gelu=False", name,
                       "OpenAI weights were trained with" if from_openai else "this model config requires")
        return True
    return bool(quick_gelu)


def _hub_model(name: str, tag: str, quick_gelu: bool) -> nn.Module:
    pcfg = open_clip.get_pretrained_cfg(name, tag)
    use_quick = bool(pcfg.get("quick_gelu", False)) or (tag == "openai")
    if use_quick != quick_gelu:
        logger.info("CLIP %s/%s: using quick_gelu=%s as the pretrained tag requires", name, tag, use_quick)
    try:
        model = open_clip.create_model(name, pretrained=tag, force_quick_gelu=use_quick, precision="fp32")
    except Exception as e:  # download failures come as RuntimeError from open_clip
        raise RuntimeError(
            f"could not fetch CLIP {name!r} weights for tag {tag!r} ({e}). Without network access, download the "
            f"file elsewhere (e.g. OpenAI's RN50.pt) and set MODEL.FASTTCM.CLIP.WEIGHTS to its path.") from e
    return model.float()


def _weights_kind(name: str, weights: str) -> str:
    """'random', 'file' or 'tag'; raises for a path that does not exist or an unknown tag."""
    if not weights:
        return "random"
    if os.path.isfile(weights):
        return "file"
    looks_like_path = os.sep in weights or "/" in weights or os.path.splitext(weights)[1] in (
        ".pt", ".pth", ".pkl", ".bin", ".safetensors")
    if looks_like_path:
        raise FileNotFoundError(f"CLIP weights file not found: {weights}")
    if name == TINY_CLIP_NAME:
        raise ValueError(f"{TINY_CLIP_NAME!r} has no pretrained weights; got weights={weights!r}")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if weights not in tags:
        raise ValueError(f"{weights!r} is neither an existing file nor a pretrained tag of {name} (tags: {tags})")
    return "tag"


def build_clip_model(name: str = "RN50", weights: str = "", quick_gelu: bool = True) -> nn.Module:
    """Build an open_clip ``CLIP`` ResNet (float32, CPU, eval mode) with the requested weights.

    Args:
        name: a name from :func:`available_clip_names`.
        weights: ``""`` (random), an open_clip pretrained tag (downloads), or a local file path (see module doc).
        quick_gelu: text-transformer activation; forced True for OpenAI weights.

    Returns:
        ``open_clip.CLIP`` with ``.visual`` a ``ModifiedResNet``; its state dict is in OpenAI's key layout.
    """
    cfg = clip_model_config(name)
    kind = _weights_kind(name, weights)
    if kind == "tag":
        return _hub_model(name, weights, quick_gelu).eval()
    sd, from_openai = read_clip_state_dict(weights) if kind == "file" else (None, False)
    cfg["quick_gelu"] = _resolve_quick_gelu(name, cfg, quick_gelu, from_openai)
    model = open_clip.CLIP(**cfg)
    if sd is not None:
        check_state_dict_fits(model, sd, weights, hint=f" {name!r} (check MODEL.FASTTCM.CLIP.NAME)")
        model.load_state_dict(sd, strict=True)
    return model.eval()


def build_clip_visual(name: str = "RN50", weights: str = "") -> ModifiedResNet:
    """Build only the image tower (``ModifiedResNet`` with its attention pool) of CLIP ``name``.

    Used when the text branch is not needed (mode ``baseline`` or offline text embeddings): no text transformer is
    constructed. Weights come from the ``visual.*`` entries of the same sources as :func:`build_clip_model`.
    """
    cfg = clip_model_config(name)
    kind = _weights_kind(name, weights)
    if kind == "tag":
        return _hub_model(name, weights, True).visual.eval()
    vision = dict(cfg["vision_cfg"])
    width = vision["width"]
    visual = ModifiedResNet(
        layers=vision["layers"],
        output_dim=cfg["embed_dim"],
        heads=width * 32 // vision.get("head_width", 64),
        image_size=vision["image_size"],
        width=width,
    )
    if kind == "file":
        sd, _ = read_clip_state_dict(weights)
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
        check_state_dict_fits(visual, sd, weights, hint=f" {name!r} image tower (check MODEL.FASTTCM.CLIP.NAME)",
                              prefix="visual.")
        visual.load_state_dict(sd, strict=True)
    return visual.eval()


def clip_state_dict_for_export(model: nn.Module, openai_metadata: bool) -> Dict[str, torch.Tensor]:
    """A plain float32 state dict of an open_clip ``CLIP`` in OpenAI's key layout.

    With ``openai_metadata`` the three OpenAI metadata entries are added (as int64 scalars), so that a later load
    knows the weights come from OpenAI (QuickGELU).
    """
    sd = {k: (v.float() if v.is_floating_point() else v).detach().clone().cpu() for k, v in model.state_dict().items()}
    if openai_metadata:
        grid = model.visual.attnpool.positional_embedding.shape[0] - 1
        sd["input_resolution"] = torch.tensor(int(round(grid ** 0.5)) * 32)
        sd["context_length"] = torch.tensor(model.positional_embedding.shape[0])
        sd["vocab_size"] = torch.tensor(model.token_embedding.weight.shape[0])
    return sd
