"""DOTA tooling: label/Task1 file formats (:mod:`.labels`), quad geometry and polygon NMS (:mod:`.geometry`),
splitting images into patches (:mod:`.split`) and merging patch detections back (:mod:`.merge`).

Nothing here imports Detectron2; the dataset registration lives in :mod:`fasttcm.data.datasets.dota` and the
evaluation in :mod:`fasttcm.evaluation.dota_eval`.
"""
from .geometry import poly_nms, quad_iou_pairs, quads_to_rboxes, rboxes_to_quads  # noqa: F401
from .labels import (  # noqa: F401
    DOTA_V1_CLASSES,
    DOTA_V15_CLASSES,
    LabelFile,
    Task1Detections,
    dota_classes,
    parse_label_file,
    read_task1_dir,
    read_task1_file,
    write_task1_dir,
)
from .merge import merge_detections, merge_task1, merge_task1_dir, patch_to_image  # noqa: F401
from .split import (  # noqa: F401
    SplitConfig,
    SplitStats,
    parse_patch_name,
    patch_name,
    patch_origins,
    patch_starts,
    split_dataset,
    split_image,
)
