"""Data: dataset registration from native formats (importing this package registers the built-in datasets),
polygon validation/repair helpers, synthetic data."""
from . import datasets, polygons  # noqa: F401
from .datasets import (  # noqa: F401
    LoadStats,
    SyntheticTextConfig,
    TextInstance,
    load_gt_file,
    load_text_dataset,
    register_synthetic_text,
    register_text_dataset,
    render_synthetic_text_image,
)
from . import db_targets, rotated_mapper, rotated_transforms, text_mapper, transforms  # noqa: F401,E402
from .rotated_mapper import RotatedDatasetMapper  # noqa: F401,E402
from .text_mapper import TextDatasetMapper  # noqa: F401,E402
