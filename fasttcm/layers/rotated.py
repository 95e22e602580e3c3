"""Public wrappers of the rotated-box ops in :mod:`fasttcm.layers._C` (no detectron2 import).

Rotated boxes are ``(cx, cy, w, h, angle)``: centre, width and height in pixels, ``angle`` in degrees,
counter-clockwise as seen on an image whose y axis points down (``detectron2.structures.RotatedBoxes``).
"""
import torch
from torch import nn
from torch.autograd import Function
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from . import _C

__all__ = ["box_iou_rotated", "nms_rotated", "batched_nms_rotated", "roi_align_rotated", "ROIAlignRotated"]


def box_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection-over-union of rotated boxes.

    Args:
        boxes1: Tensor[N, 5], ``(cx, cy, w, h, angle_degrees)``, floating point.
        boxes2: Tensor[M, 5], same format and device.

    Returns:
        Tensor[N, M] with values in [0, 1], in the inputs' dtype. As in detectron2's kernels, a box whose area
        ``w * h`` is below 1e-14 (a zero or one negative side) has IoU 0, and one with both sides negative is the
        box ``(|w|, |h|)``. Exact: the polygons are clipped in float64 (agrees with shapely to ~1e-12), so equal
        geometry gives exactly equal IoUs; only pairs whose bounding boxes overlap are clipped. Not differentiable.

    Raises:
        OpInputError (a ValueError and a RuntimeError): wrong shapes, non-floating dtypes, different devices;
        NonFiniteInputError (also a FloatingPointError): NaN or infinite coordinates. See docs/DETECTRON2.md.
    """
    return _C.box_iou_rotated(boxes1, boxes2)


def nms_rotated(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression of rotated boxes.

    Args:
        boxes: Tensor[N, 5], ``(cx, cy, w, h, angle_degrees)``.
        scores: Tensor[N], same device.
        iou_threshold: a box is discarded when its IoU with a kept, higher-scoring box is strictly greater.

    Returns:
        int64 Tensor[K] of the kept indices, by decreasing score (equal scores: lower index first). Same set as
        brute-force greedy NMS with exact IoU (detectron2's CUDA kernel and torchvision use the same ``>``;
        detectron2's CPU kernel uses ``>=``, which differs only for IoU exactly equal to the threshold).

    Raises:
        OpInputError / NonFiniteInputError, as :func:`box_iou_rotated`.
    """
    return _C.nms_rotated(boxes, scores, iou_threshold)


def batched_nms_rotated(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Rotated NMS applied independently within each category.

    Args:
        boxes: Tensor[N, 5]; scores: Tensor[N]; idxs: integer Tensor[N] of category ids; iou_threshold: float.

    Returns:
        int64 Tensor[K] of the kept indices over all categories, by decreasing score. Boxes of different
        categories never suppress each other (pairs are filtered by category, no coordinate offsets, so there is no
        precision loss for large coordinates).
    """
    return _C.batched_nms_rotated(boxes, scores, idxs, iou_threshold)


class _ROIAlignRotatedFunction(Function):
    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio, aligned):
        output_size = _pair(output_size)
        ctx.save_for_backward(rois)
        ctx.output_size = output_size
        ctx.spatial_scale = spatial_scale
        ctx.sampling_ratio = sampling_ratio
        ctx.aligned = aligned
        ctx.input_shape = input.shape
        return _C.roi_align_rotated_forward(
            input, rois, spatial_scale, output_size[0], output_size[1], sampling_ratio, aligned=aligned
        )

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        n, c, h, w = ctx.input_shape
        grad_input = _C.roi_align_rotated_backward(
            grad_output, rois, ctx.spatial_scale, ctx.output_size[0], ctx.output_size[1], n, c, h, w,
            ctx.sampling_ratio, aligned=ctx.aligned,
        )
        return grad_input, None, None, None, None, None


def roi_align_rotated(
    input: torch.Tensor, rois: torch.Tensor, output_size, spatial_scale: float, sampling_ratio: int,
    aligned: bool = True,
) -> torch.Tensor:
    """RoIAlign over rotated regions (differentiable w.r.t. ``input``).

    Args:
        input: Tensor[N, C, H, W] feature map.
        rois: Tensor[R, 6], ``(batch_index, cx, cy, w, h, angle_degrees)`` in input-image pixels.
        output_size: ``int`` or ``(pooled_height, pooled_width)``.
        spatial_scale: feature-map size / image size (e.g. 0.25 for stride 4).
        sampling_ratio: bilinear samples per bin along each axis; 0 = ``ceil(roi_size / output_size)`` per RoI.
        aligned: True (detectron2's only mode): pixel centres sit at half-integer coordinates, so coordinates are
            shifted by -0.5 after scaling. False: no shift (the legacy convention).

    Returns:
        Tensor[R, C, pooled_height, pooled_width]. Each bin averages its grid of bilinear samples; samples outside
        ``[-1, H] x [-1, W]`` count as 0. Widths and heights must be >= 0 (as detectron2 asserts); no clamping.
    """
    return _ROIAlignRotatedFunction.apply(input, rois, output_size, spatial_scale, sampling_ratio, aligned)


class ROIAlignRotated(nn.Module):
    """Module form of :func:`roi_align_rotated`.

    Args:
        output_size: ``int`` or ``(pooled_height, pooled_width)``.
        spatial_scale: feature-map size / image size.
        sampling_ratio: samples per bin and axis; 0 = adaptive.
        aligned: see :func:`roi_align_rotated`.

    ``forward(input, rois)``: input Tensor[N, C, H, W], rois Tensor[R, 6] -> Tensor[R, C, *output_size]. Half
    precision inputs are computed in float32 and returned in their dtype.
    """

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int, aligned: bool = True):
        super().__init__()
        self.output_size = _pair(output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_align_rotated(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )
