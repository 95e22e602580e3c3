"""Loading open_clip CLIP ResNets (OpenAI weights, local files, random, tiny test config) and their two towers."""
from .image_encoder import CLIPImageEncoder, resize_attnpool_positional_embedding
from .loading import (
    CLIP_PIXEL_MEAN,
    CLIP_PIXEL_STD,
    TINY_CLIP_CONFIG,
    TINY_CLIP_NAME,
    available_clip_names,
    build_clip_model,
    build_clip_visual,
    check_state_dict_fits,
    clip_model_config,
    clip_state_dict_for_export,
    read_clip_state_dict,
)
from .text_encoder import CLIPTextEncoder

__all__ = [
    "CLIPImageEncoder",
    "CLIPTextEncoder",
    "CLIP_PIXEL_MEAN",
    "CLIP_PIXEL_STD",
    "TINY_CLIP_CONFIG",
    "TINY_CLIP_NAME",
    "available_clip_names",
    "build_clip_model",
    "build_clip_visual",
    "check_state_dict_fits",
    "clip_model_config",
    "clip_state_dict_for_export",
    "read_clip_state_dict",
    "resize_attnpool_positional_embedding",
]
