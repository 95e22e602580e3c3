"""Dataset loaders and registrations. Importing this package registers the built-in text datasets (lazily)."""
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from . import builtin, ctw1500, icdar2015, synthetic_text, text, totaltext  # noqa: F401
from .builtin import TEXT_SPLITS, datasets_root, register_all_text
from .synthetic_text import (
    SyntheticTextConfig,
    materialize_synthetic_text,
    register_synthetic_text,
    render_synthetic_text_image,
)
from .text import LoadStats, TextInstance, load_gt_file, load_text_dataset, register_text_dataset

register_all_text()
synthetic_text.register_builtin_synthetic_text()

from . import dota, synthetic_aerial  # noqa: F401,E402  (registers dota_v1_* and synthetic_aerial_*)
