"""FastTCM backbone: CLIP image encoder + text branch + score map, as a Detectron2 backbone (and an FPN on it).

Registered in ``BACKBONE_REGISTRY``:

* ``build_fasttcm_backbone``: :class:`FastTCMBackbone`, outputs res2..res5 (strides 4, 8, 16, 32; channels
  256/512/1024/2048 for RN50, res5 gets K more: the score map). ``size_divisibility`` is 32.
* ``build_fasttcm_fpn_backbone``: :class:`FastTCMFPN`, Detectron2's FPN on it (``cfg.MODEL.FPN.*``; empty
  ``IN_FEATURES`` means res2..res5), giving p2..p5, plus p6 (``LastLevelMaxPool``) when
  ``MODEL.FASTTCM.FPN_P6`` is True.

Both have ``forward(x) -> features`` (so stock meta-architectures work) and ``forward_with_aux(x) -> (features,
aux)`` where ``aux["score_map"]`` is the cosine-similarity map S (B, K, H/32, W/32), values in [-1, 1] (the
auxiliary loss divides it by ``MODEL.FASTTCM.TAU``); ``aux`` is empty in mode ``baseline``.

Input: ``x`` (B, 3, H, W), H and W multiples of 32, already normalized with CLIP's mean/std in RGB order. With
Detectron2's meta-architectures that means ``INPUT.FORMAT = "RGB"``, ``MODEL.PIXEL_MEAN = CLIP_PIXEL_MEAN`` and
``MODEL.PIXEL_STD = CLIP_PIXEL_STD`` (0-255 units: [122.771, 116.746, 104.094] / [68.501, 66.632, 70.323]), which
:func:`set_clip_input_config` writes into a config; pad with
``ImageList.from_tensors(images, size_divisibility=backbone.size_divisibility)``.

Modes (``MODEL.FASTTCM.MODE``):

* ``baseline``: CLIP ResNet only (no attention pool, no text branch; res5 has 2048 channels).
* ``tcm``: the language prompt generator reads the image's global embedding g, so the text encoder runs for
  every image (B*K sequences per batch).
* ``fasttcm``: the generator reads a learned meta-query; T (K, E) is computed once in eval mode (cached, or read
  from ``MODEL.FASTTCM.TEXT_EMBEDDINGS_FILE`` without building the text encoder) and made image-aware by BSM.
"""
import logging
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool
from detectron2.utils.logger import log_first_n
from torch import nn

from .clip import (
    CLIP_PIXEL_MEAN,
    CLIP_PIXEL_STD,
    CLIPImageEncoder,
    CLIPTextEncoder,
    build_clip_model,
    build_clip_visual,
)
from .prompting import (
    BimodalSimilarityMatching,
    CachedTextEmbeddings,
    OfflineTextEmbeddings,
    PromptTextEncoder,
    TextContextDecoder,
    VisualPromptGenerator,
    cosine_score_map,
)

logger = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "FastTCMBackbone",
    "FastTCMFPN",
    "build_fasttcm_backbone",
    "build_fasttcm_fpn_backbone",
    "set_clip_input_config",
    "num_prompts_from_config",
]

MODES = ("baseline", "tcm", "fasttcm")
_RES = ("res2", "res3", "res4", "res5")


def set_clip_input_config(cfg):
    """Write CLIP's input convention into a (not frozen) Detectron2 config: RGB, CLIP mean/std in 0-255 units."""
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.PIXEL_MEAN = list(CLIP_PIXEL_MEAN)
    cfg.MODEL.PIXEL_STD = list(CLIP_PIXEL_STD)
    return cfg


def _warn_if_not_clip_normalized(cfg):
    mean, std = list(cfg.MODEL.PIXEL_MEAN), list(cfg.MODEL.PIXEL_STD)
    close = len(mean) == 3 and len(std) == 3 and all(
        abs(a - b) < 0.5 for a, b in zip(mean + std, CLIP_PIXEL_MEAN + CLIP_PIXEL_STD))
    if not close or cfg.INPUT.FORMAT != "RGB":
        logger.warning(
            "FastTCM backbone expects CLIP's input normalization (INPUT.FORMAT 'RGB', MODEL.PIXEL_MEAN %s, "
            "MODEL.PIXEL_STD %s) but the config has %s, %s, %s; see fasttcm.modeling.backbone.set_clip_input_config",
            [round(v, 3) for v in CLIP_PIXEL_MEAN], [round(v, 3) for v in CLIP_PIXEL_STD],
            cfg.INPUT.FORMAT, mean, std)


def num_prompts_from_config(cfg) -> int:
    """K = len(MODEL.FASTTCM.PROMPTS); raises if ``MODEL.FASTTCM.NUM_PROMPTS`` (when > 0) disagrees."""
    c = cfg.MODEL.FASTTCM
    k = len(c.PROMPTS)
    if k == 0:
        raise ValueError("MODEL.FASTTCM.PROMPTS is empty: give one prompt per score-map channel")
    if c.NUM_PROMPTS > 0 and c.NUM_PROMPTS != k:
        raise ValueError(
            f"MODEL.FASTTCM.NUM_PROMPTS is {c.NUM_PROMPTS} but MODEL.FASTTCM.PROMPTS has {k} prompts "
            f"({list(c.PROMPTS)}); give exactly one prompt per class")
    return k


class FastTCMBackbone(Backbone):
    """Bottom-up FastTCM backbone (see the module docstring for modes, inputs and outputs).

    Args:
        image_encoder: :class:`CLIPImageEncoder` (with its attention pool unless mode is ``baseline``).
        mode: one of ``MODES``.
        text: ``tcm``: a :class:`PromptTextEncoder` (called with g); ``fasttcm``: a :class:`CachedTextEmbeddings`
            or :class:`OfflineTextEmbeddings` (called without arguments, returns (K, E)); ``baseline``: None.
        bsm: :class:`BimodalSimilarityMatching` (``fasttcm`` only).
        visual_prompt, text_context: the two decoders (not in ``baseline``).
        num_prompts: K (score-map channels appended to res5).
    """

    def __init__(self, image_encoder: CLIPImageEncoder, mode: str = "fasttcm", text: Optional[nn.Module] = None,
                 bsm: Optional[BimodalSimilarityMatching] = None, visual_prompt: Optional[VisualPromptGenerator] = None,
                 text_context: Optional[TextContextDecoder] = None, num_prompts: int = 0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"MODEL.FASTTCM.MODE must be one of {MODES}, got {mode!r}")
        needed = {"baseline": (), "tcm": ("text", "visual_prompt", "text_context"),
                  "fasttcm": ("text", "bsm", "visual_prompt", "text_context")}[mode]
        given = {"text": text, "bsm": bsm, "visual_prompt": visual_prompt, "text_context": text_context}
        missing = [k for k in needed if given[k] is None]
        extra = [k for k, v in given.items() if v is not None and k not in needed]
        if missing or extra:
            raise ValueError(f"mode {mode!r}: missing modules {missing}, unexpected modules {extra}")
        if mode != "baseline" and num_prompts < 1:
            raise ValueError(f"mode {mode!r} needs at least one prompt, got num_prompts={num_prompts}")
        self.mode = mode
        self.image_encoder = image_encoder
        self.text = text
        self.bsm = bsm
        self.visual_prompt = visual_prompt
        self.text_context = text_context
        self.num_prompts = num_prompts if mode != "baseline" else 0
        self._out_features = list(_RES)

    @property
    def size_divisibility(self) -> int:
        return 32

    def output_shape(self) -> Dict[str, ShapeSpec]:
        shapes = dict(self.image_encoder.output_shape())
        r5 = shapes["res5"]
        shapes["res5"] = ShapeSpec(channels=r5.channels + self.num_prompts, stride=r5.stride)
        return shapes

    def text_embeddings(self) -> torch.Tensor:
        """FastTCM's image-independent T (K, E) (cached in eval mode). Not defined for other modes."""
        if self.mode != "fasttcm":
            raise RuntimeError(f"text embeddings depend on the image in mode {self.mode!r}")
        return self.text()

    def forward_with_aux(self, x: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        """x: (B, 3, H, W) normalized, H and W multiples of 32.

        Returns:
            features: {"res2": (B, C2, H/4, W/4), ..., "res5": (B, C5 + K, H/32, W/32)} (no + K in baseline).
            aux (empty in baseline): "score_map" S (B, K, H/32, W/32) in [-1, 1]; "text_embeddings" T' (B, K, E);
            "image_embeddings" I' (B, E, H/32, W/32); "global_embedding" g (B, E).
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(
                f"image size {tuple(x.shape[-2:])} is not a multiple of 32; pad the batch with "
                f"ImageList.from_tensors(images, size_divisibility=backbone.size_divisibility)")
        features = self.image_encoder(x)
        if self.mode == "baseline":
            return features, {}
        g, dense = self.image_encoder.pool(features["res5"])
        if self.mode == "tcm":
            text = self.text(g)  # (B, K, E): the text encoder runs per image
        else:
            text = self.bsm(self.text(), g)  # (K, E) -> (B, K, E)
        text_refined = self.text_context(text, g, dense)
        image_refined = self.visual_prompt(dense, text)
        score_map = cosine_score_map(image_refined, text_refined)
        features["res5"] = torch.cat([features["res5"], score_map.to(features["res5"].dtype)], dim=1)
        aux = {"score_map": score_map, "text_embeddings": text_refined, "image_embeddings": image_refined,
               "global_embedding": g}
        return features, aux

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Features only (see :meth:`forward_with_aux`)."""
        return self.forward_with_aux(x)[0]

    @classmethod
    def from_config(cls, cfg) -> "FastTCMBackbone":
        """Build from ``cfg.MODEL.FASTTCM`` (see ``fasttcm.config``)."""
        c = cfg.MODEL.FASTTCM
        mode = c.MODE
        if mode not in MODES:
            raise ValueError(f"MODEL.FASTTCM.MODE must be one of {MODES}, got {mode!r}")
        offline = mode == "fasttcm" and bool(c.TEXT_EMBEDDINGS_FILE)
        k = num_prompts_from_config(cfg) if mode != "baseline" else 0
        if not c.CLIP.WEIGHTS and c.NORM == "FrozenBN":
            log_first_n(
                logging.WARNING,
                "MODEL.FASTTCM.CLIP.WEIGHTS is empty: random CLIP weights (fine when a trained checkpoint is loaded "
                "next). With NORM 'FrozenBN', open_clip's zero-initialised last BatchNorm scale of every residual "
                "block stays frozen and those branches inactive: to train from scratch use NORM 'BN'.",
                name=__name__)
        if mode == "baseline" or offline:
            visual, text_encoder = build_clip_visual(c.CLIP.NAME, c.CLIP.WEIGHTS), None
        else:
            clip_model = build_clip_model(c.CLIP.NAME, c.CLIP.WEIGHTS, quick_gelu=c.CLIP.QUICK_GELU)
            visual, text_encoder = clip_model.visual, CLIPTextEncoder(clip_model)
        image_encoder = CLIPImageEncoder(visual, with_pool=mode != "baseline", norm=c.NORM,
                                         freeze_at=c.FREEZE_AT, dense_pool=c.DENSE_POOL)
        if mode == "baseline":
            return cls(image_encoder, mode)
        e = image_encoder.embed_dim
        if offline:
            text = OfflineTextEmbeddings.from_file(c.TEXT_EMBEDDINGS_FILE, list(c.PROMPTS), e)
        else:
            text = PromptTextEncoder(text_encoder, list(c.PROMPTS), c.NUM_CONTEXT, c.CONTEXT_LENGTH, e)
            if mode == "fasttcm":
                text = CachedTextEmbeddings(text, e)
        dec = dict(width=c.DECODER_WIDTH, layers=c.DECODER_LAYERS, heads=c.DECODER_HEADS, gamma_init=c.GAMMA_INIT)
        return cls(image_encoder, mode, text=text,
                   bsm=BimodalSimilarityMatching(e) if mode == "fasttcm" else None,
                   visual_prompt=VisualPromptGenerator(e, **dec), text_context=TextContextDecoder(e, **dec),
                   num_prompts=k)


class FastTCMFPN(FPN):
    """Detectron2's FPN on a :class:`FastTCMBackbone`, passing the backbone's ``aux`` through.

    ``forward_with_aux`` runs the bottom-up network once and applies the same top-down pathway as
    ``FPN.forward`` (lateral 1x1 convs, nearest x2 upsampling, sum/avg fusion, 3x3 output convs, optional top
    block); ``forward`` returns only the features.
    """

    def forward_with_aux(self, x: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        bottom_up, aux = self.bottom_up.forward_with_aux(x)
        return self._top_down(bottom_up), aux

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.forward_with_aux(x)[0]

    def _top_down(self, bottom_up: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        names = self.in_features[::-1]  # coarsest first, as lateral_convs / output_convs are ordered
        outputs = []
        merged = None
        for name, lateral, output in zip(names, self.lateral_convs, self.output_convs):
            lat = lateral(bottom_up[name])
            if merged is None:
                merged = lat
            else:
                merged = lat + F.interpolate(merged, scale_factor=2.0, mode="nearest")
                if self._fuse_type == "avg":
                    merged = merged / 2
            outputs.append(output(merged))
        outputs = outputs[::-1]  # finest first, matching self._out_features
        if self.top_block is not None:
            src = self.top_block.in_feature
            top_in = bottom_up[src] if src in bottom_up else outputs[self._out_features.index(src)]
            outputs.extend(self.top_block(top_in))
        return dict(zip(self._out_features, outputs))


@BACKBONE_REGISTRY.register()
def build_fasttcm_backbone(cfg, input_shape: Optional[ShapeSpec] = None) -> FastTCMBackbone:
    """Detectron2 builder of :class:`FastTCMBackbone` (``MODEL.BACKBONE.NAME: build_fasttcm_backbone``)."""
    if input_shape is not None and input_shape.channels not in (None, 3):
        raise ValueError(f"CLIP backbones take 3-channel images, got {input_shape.channels}")
    _warn_if_not_clip_normalized(cfg)
    return FastTCMBackbone.from_config(cfg)


@BACKBONE_REGISTRY.register()
def build_fasttcm_fpn_backbone(cfg, input_shape: Optional[ShapeSpec] = None) -> FastTCMFPN:
    """Detectron2 builder of :class:`FastTCMFPN` (``MODEL.BACKBONE.NAME: build_fasttcm_fpn_backbone``)."""
    bottom_up = build_fasttcm_backbone(cfg, input_shape)
    in_features = list(cfg.MODEL.FPN.IN_FEATURES) or list(_RES)
    return FastTCMFPN(
        bottom_up=bottom_up,
        in_features=in_features,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool() if cfg.MODEL.FASTTCM.FPN_P6 else None,
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
