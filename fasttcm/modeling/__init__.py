"""Models: the FastTCM backbone (CLIP + prompting + score map) and the heads/meta-architectures built on it.

Importing this package registers the backbones ``build_fasttcm_backbone`` and ``build_fasttcm_fpn_backbone`` (and
the meta-architectures below) in Detectron2's registries.
"""
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from . import clip, losses, prompting  # noqa: F401
from .backbone import (  # noqa: F401
    FastTCMBackbone,
    FastTCMFPN,
    build_fasttcm_backbone,
    build_fasttcm_fpn_backbone,
    set_clip_input_config,
)
from . import rotated_rcnn  # noqa: F401,E402  (registers FastTCMRotatedRCNN)
from . import text_detector  # noqa: F401,E402  (registers TextDetector)
