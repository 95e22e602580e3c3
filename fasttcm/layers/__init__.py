"""Ops on rotated boxes, and Detectron2's compiled ops in PyTorch. Imports nothing from detectron2.

Public API (rotated boxes are ``(cx, cy, w, h, angle_degrees)``, angle counter-clockwise on a y-down image, as in
``detectron2.structures.RotatedBoxes``):

* :func:`box_iou_rotated` (Tensor[N,5], Tensor[M,5]) -> Tensor[N,M] exact IoU
* :func:`nms_rotated` / :func:`batched_nms_rotated` -> int64 kept indices by decreasing score
* :func:`roi_align_rotated` / :class:`ROIAlignRotated` -> Tensor[R, C, ph, pw], differentiable
* :class:`OpInputError` (a ValueError and a RuntimeError), :class:`NonFiniteInputError`: what they raise for bad
  input (``docs/DETECTRON2.md`` tables where they differ from detectron2's kernels)

``fasttcm.layers._C`` stands in for ``detectron2._C`` when detectron2 is installed without compiled ops: importing
this package installs it (:func:`fasttcm.layers._C.install_as_detectron2_C`), so import it before
``detectron2.layers`` (fasttcm's own modules do, through ``fasttcm._detectron2``).
"""
from . import _C  # noqa: F401  (first: it may already be loaded as detectron2._C's implementation)

_C.install_as_detectron2_C()

from ._C import NonFiniteInputError, OpInputError  # noqa: E402
from .rotated import ROIAlignRotated, batched_nms_rotated, box_iou_rotated, nms_rotated, roi_align_rotated  # noqa: E402

__all__ = [
    "box_iou_rotated",
    "nms_rotated",
    "batched_nms_rotated",
    "roi_align_rotated",
    "ROIAlignRotated",
    "OpInputError",
    "NonFiniteInputError",
]
