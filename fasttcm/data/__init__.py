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
