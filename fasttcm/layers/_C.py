"""Detectron2's compiled ops (``detectron2._C``) written as vectorized PyTorch, for CPU and CUDA.

Detectron2 v0.6 imports ``detectron2._C`` at module level for rotated IoU, rotated NMS, RoIAlignRotated and
deformable convolution. When detectron2 is installed without its compiled extension, this module stands in for
it: ``tools/install_detectron2.py`` writes a ``detectron2/_C.py`` that loads this file *by path* as
``fasttcm.layers._C``, and importing :mod:`fasttcm.layers` calls :func:`install_as_detectron2_C`. A compiled detectron2,
when present, always wins.

This file must stay self-contained: it imports only the standard library, numpy, torch and torchvision (never
``fasttcm`` or ``detectron2``), because it is executed before either package may be importable.

Conventions (as in ``detectron2.structures.RotatedBoxes``): a rotated box is ``(cx, cy, w, h, angle)`` in
absolute pixels, ``angle`` in degrees, counter-clockwise as seen on an image whose y axis points down.

Ops provided (same names and call signatures as detectron2 v0.6's ``_C``):

* :func:`box_iou_rotated` -- exact pairwise IoU of rotated boxes (float64 geometry, pruned candidate pairs).
* :func:`nms_rotated` -- greedy rotated NMS.
* :func:`roi_align_rotated_forward` / :func:`roi_align_rotated_backward` -- RoIAlignRotated.
* ``deform_conv_forward/backward_input/backward_filter``, ``modulated_deform_conv_forward/backward`` -- through
  ``torchvision.ops.deform_conv2d``.
* ``COCOevalEvaluateImages``, ``COCOevalAccumulate``, ``InstanceAnnotation``, ``ImageEvaluation`` -- detectron2's
  fast COCO evaluation, in numpy (``fasttcm/layers/_coco_eval.py``), same numbers as pycocotools.
* :func:`get_compiler_version`, :func:`get_cuda_version`, :func:`has_cuda` for ``collect_env``.

When fasttcm supplies ``_C``, the rotated ops are also registered as ``torch.ops.detectron2.<name>`` (see
:data:`TORCH_OPS`; detectron2 0.6 calls ``nms_rotated`` there, its main branch all four). :func:`compiled_op` finds a
compiled detectron2's op on either layout.

Bad input raises :class:`OpInputError`, which is a ``ValueError`` and a ``RuntimeError`` (what detectron2's
compiled ops raise), with :class:`OpInputTypeError` (also a ``TypeError``) for arguments of the wrong Python type
and :class:`NonFiniteInputError` (also a ``FloatingPointError``) for NaN or infinite values. Where these semantics
differ from detectron2's kernels, and why, is tabled in ``docs/DETECTRON2.md``. Any other ``_C`` attribute raises
:class:`MissingCompiledOpError`, which is both an ``AttributeError`` and a ``NotImplementedError``.
"""
import importlib
import importlib.machinery
import importlib.util
import math
import os
import sys
import warnings

import numpy as np
import torch
import torchvision

__fasttcm_ops__ = True

__all__ = [
    "box_iou_rotated",
    "nms_rotated",
    "batched_nms_rotated",
    "roi_align_rotated_forward",
    "roi_align_rotated_backward",
    "deform_conv_forward",
    "deform_conv_backward_input",
    "deform_conv_backward_filter",
    "modulated_deform_conv_forward",
    "modulated_deform_conv_backward",
    "get_compiler_version",
    "get_cuda_version",
    "has_cuda",
    "COCOevalEvaluateImages",
    "COCOevalAccumulate",
    "InstanceAnnotation",
    "ImageEvaluation",
    "install_as_detectron2_C",
    "compiled_op",
    "TORCH_OPS",
    "OpInputError",
    "OpInputTypeError",
    "NonFiniteInputError",
    "MissingCompiledOpError",
]

# Pairs of boxes handled at once by the exact clipping (bounds its temporary memory to about 150 MB).
_PAIR_CHUNK = 1 << 16
# Candidate pairs expanded at once by the sweep over sorted boxes.
_SWEEP_CHUNK = 1 << 22
# Up to this many box pairs (N x M), candidates come from dense bounding-box tests (fast, O(N M) memory in row
# chunks of _DENSE_CHUNK pairs); above it from a sweep over boxes sorted by their left edge (O(N log N + pairs)).
_DENSE_LIMIT = 1 << 26
_DENSE_CHUNK = 1 << 23
# Bilinear samples handled at once by RoIAlignRotated.
_ROI_SAMPLE_CHUNK = 1 << 20


# ----------------------------------------------------------------------------------------------------------------
# input checking
# ----------------------------------------------------------------------------------------------------------------
class OpInputError(ValueError, RuntimeError):
    """Bad input to one of these ops: a ``ValueError`` (fasttcm's convention) and a ``RuntimeError``, which is what
    detectron2's compiled ops raise for bad input (their ``TORCH_CHECK``s), so code written against either catches
    it. The message names the argument and says what was expected."""


class OpInputTypeError(OpInputError, TypeError):
    """An argument of the wrong Python type (not a tensor, not a number): also a ``TypeError``, as detectron2's
    compiled ops raise through pybind11 for such calls."""


class NonFiniteInputError(OpInputError, FloatingPointError):
    """NaN or infinite boxes, scores or RoIs: also a ``FloatingPointError``, the error detectron2 raises when
    training diverges ("Predicted boxes or scores contain Inf/NaN")."""


def _describe(t):
    if not isinstance(t, torch.Tensor):
        return f"a {type(t).__name__}"
    return f"a {t.dtype} tensor of shape {tuple(t.shape)} on {t.device}"


def _check_tensor(name, t, ndim=None, last=None, floating=True):
    if not isinstance(t, torch.Tensor):
        raise OpInputTypeError(f"{name}: expected a torch.Tensor, got {_describe(t)}")
    if ndim is not None and t.dim() != ndim:
        shape = {1: "(N,)", 2: f"(N, {last})", 4: "(N, C, H, W)"}.get(ndim, f"{ndim}-D")
        raise OpInputError(f"{name}: expected shape {shape}, got {_describe(t)}")
    if last is not None and t.shape[-1] != last:
        raise OpInputError(f"{name}: expected shape (N, {last}), got {_describe(t)}")
    if floating and not t.is_floating_point():
        raise OpInputError(f"{name}: expected a floating-point tensor, got {_describe(t)}")


def _check_finite(name, t):
    if t.numel() and not bool(torch.isfinite(t).all()):
        if t.dim() > 1:
            what = f"{int((~torch.isfinite(t)).any(dim=-1).sum())} of {t.shape[0]} rows"
        else:
            what = f"{int((~torch.isfinite(t)).sum())} of {t.numel()} entries"
        raise NonFiniteInputError(f"{name}: contains NaN or infinite values ({what}); expected finite numbers")


def _check_same_device(**tensors):
    devs = {name: t.device for name, t in tensors.items()}
    if len(set(devs.values())) > 1:
        listing = ", ".join(f"{n} on {d}" for n, d in devs.items())
        raise OpInputError(f"expected all tensors on the same device, got {listing}")


def _as_float(name, value):
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise OpInputTypeError(f"{name}: expected a number, got {_describe(value)}")
        value = value.item()
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise OpInputTypeError(f"{name}: expected a number, got {value!r}") from None
    if math.isnan(value):
        raise OpInputError(f"{name}: expected a number, got NaN")
    return value


def _as_int(name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise OpInputTypeError(f"{name}: expected an int, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise OpInputError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


# ----------------------------------------------------------------------------------------------------------------
# rotated box geometry (float64)
# ----------------------------------------------------------------------------------------------------------------
# Corner signs along the (width, height) axes, in cyclic order around the rectangle.
_CORNER_SIGNS = ((1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0))


def _half_extents(b):
    """Half width / half height of the axis-aligned bounding boxes of rotated boxes ``b`` (K, 5) float64."""
    t = torch.deg2rad(b[:, 4])
    c = torch.cos(t).abs()
    s = torch.sin(t).abs()
    hx = 0.5 * (b[:, 2] * c + b[:, 3] * s)
    hy = 0.5 * (b[:, 2] * s + b[:, 3] * c)
    # a relative slack far above rounding error, so no touching pair is lost to it
    return hx * (1 + 1e-9), hy * (1 + 1e-9)


def _slab(a, e, lim, tol):
    """Parameter interval ``[lo, hi]`` where ``|a + t e| <= lim`` (``lo > hi`` when empty). A segment parallel to
    the slab (``e == 0``) is inside when ``|a| <= lim + tol``."""
    moving = e != 0
    es = torch.where(moving, e, torch.ones_like(e))
    t1 = (-lim - a) / es
    t2 = (lim - a) / es
    inside = a.abs() <= lim + tol
    inf = torch.full_like(a, math.inf)
    lo = torch.where(moving, torch.minimum(t1, t2), torch.where(inside, -inf, inf))
    hi = torch.where(moving, torch.maximum(t1, t2), torch.where(inside, inf, -inf))
    return lo, hi


def _intersection_area(b1, b2):
    """Exact intersection area of rotated boxes ``b1[k]`` and ``b2[k]``; both (K, 5) float64, positive sides.

    Works in the frame of box 1 (centred and axis aligned: the rectangle ``|x| <= hw1, |y| <= hh1``). Each edge of
    box 2 is clipped to that rectangle (Liang-Barsky); the clipped edges' end points are the corners of box 2 inside
    box 1 and the crossings of the two boundaries. With the corners of box 1 inside box 2 they are the vertices of
    the (convex) intersection polygon: 12 candidates with a validity mask, sorted by angle around their mean and
    summed with the shoelace formula.

    Degenerate contacts: clipping uses box 1's exact bounds (a tolerance there would slide crossing points along
    nearly parallel edges). An edge of box 2 lying on box 1's boundary may then be dropped by rounding, but its
    vertices are still found: as end points of the adjacent edges of box 2, or as corners of box 1, whose test for
    lying in box 2 carries a tolerance of 1e-13 of the boxes' size (about 50 times the rounding error). A corner
    admitted by the tolerance lies that close to the true polygon, which bounds the area error.
    """
    dtype, dev = b1.dtype, b1.device
    hw1, hh1 = 0.5 * b1[:, 2:3], 0.5 * b1[:, 3:4]  # (K, 1)
    hw2, hh2 = 0.5 * b2[:, 2:3], 0.5 * b2[:, 3:4]
    t1 = torch.deg2rad(b1[:, 4:5])
    c1, s1 = torch.cos(t1), torch.sin(t1)
    dx = b2[:, 0:1] - b1[:, 0:1]
    dy = b2[:, 1:2] - b1[:, 1:2]
    # box-local coordinates: u along the width axis (cos, -sin), v along the height axis (sin, cos)
    qx = dx * c1 - dy * s1
    qy = dx * s1 + dy * c1
    tr = torch.deg2rad(b2[:, 4:5] - b1[:, 4:5])
    cr, sr = torch.cos(tr), torch.sin(tr)
    signs = torch.tensor(_CORNER_SIGNS, dtype=dtype, device=dev)
    su, sv = signs[:, 0], signs[:, 1]  # (4,)
    a = su * hw2  # (K, 4)
    b = sv * hh2
    qcx = qx + a * cr + b * sr  # corners of box 2 in box 1's frame, in cyclic order
    qcy = qy - a * sr + b * cr
    tol = 1e-13 * (hw1 + hh1 + hw2 + hh2)  # (K, 1)

    # edges of box 2 clipped to box 1
    ex = torch.roll(qcx, -1, dims=1) - qcx
    ey = torch.roll(qcy, -1, dims=1) - qcy
    lox, hix = _slab(qcx, ex, hw1, tol)
    loy, hiy = _slab(qcy, ey, hh1, tol)
    t0 = torch.clamp(torch.maximum(lox, loy), min=0.0)
    t1 = torch.clamp(torch.minimum(hix, hiy), max=1.0)
    seg = t0 <= t1
    t0 = torch.where(seg, t0, torch.zeros_like(t0))
    t1 = torch.where(seg, t1, torch.zeros_like(t1))
    # corners of box 1 inside box 2
    pcx = su * hw1  # (K, 4)
    pcy = sv * hh1
    rx, ry = pcx - qx, pcy - qy
    u = rx * cr - ry * sr
    v = rx * sr + ry * cr
    in1 = (u.abs() <= hw2 + tol) & (v.abs() <= hh2 + tol)

    px = torch.cat([qcx + t0 * ex, qcx + t1 * ex, pcx], dim=1)  # (K, 12)
    py = torch.cat([qcy + t0 * ey, qcy + t1 * ey, pcy], dim=1)
    valid = torch.cat([seg, seg, in1], dim=1)
    # every admitted point lies in box 1: clamping removes the tolerance's excursions on its side
    px = torch.minimum(torch.maximum(px, -hw1), hw1)
    py = torch.minimum(torch.maximum(py, -hh1), hh1)

    vf = valid.to(dtype)
    cnt = vf.sum(dim=1, keepdim=True)
    mx = (px * vf).sum(dim=1, keepdim=True) / cnt.clamp(min=1)
    my = (py * vf).sum(dim=1, keepdim=True) / cnt.clamp(min=1)
    rx, ry = px - mx, py - my
    ang = torch.atan2(ry, rx)
    ang = torch.where(valid, ang, torch.full_like(ang, 10.0))  # invalid points sort last
    order = torch.argsort(ang, dim=1)
    rx = torch.gather(rx, 1, order)
    ry = torch.gather(ry, 1, order)
    vs = torch.gather(valid, 1, order)
    # invalid trailing entries repeat the first point: their edges have zero length
    rx = torch.where(vs, rx, rx[:, :1])
    ry = torch.where(vs, ry, ry[:, :1])
    nx = torch.roll(rx, -1, dims=1)
    ny = torch.roll(ry, -1, dims=1)
    area = 0.5 * (rx * ny - ry * nx).sum(dim=1).abs()
    area = torch.where(cnt.squeeze(1) >= 3, area, torch.zeros_like(area))
    return torch.minimum(area, torch.minimum(b1[:, 2] * b1[:, 3], b2[:, 2] * b2[:, 3]))


def _pair_iou(b1, b2):
    """IoU of rotated boxes ``b1[k]``, ``b2[k]``: (K, 5) float64 with positive sides -> (K,) float64."""
    out = torch.empty(b1.shape[0], dtype=b1.dtype, device=b1.device)
    for s in range(0, b1.shape[0], _PAIR_CHUNK):
        p, q = b1[s : s + _PAIR_CHUNK], b2[s : s + _PAIR_CHUNK]
        inter = _intersection_area(p, q)
        union = p[:, 2] * p[:, 3] + q[:, 2] * q[:, 3] - inter
        out[s : s + _PAIR_CHUNK] = (inter / union).clamp(0.0, 1.0)
    return out


def _expand_ranges(rows, start, counts, chunk):
    """Yield ``(i, j)`` index pairs for ``j in range(start[i], start[i] + counts[i])`` over ``rows``, in chunks of
    at most ``chunk`` pairs (a single row with more pairs than ``chunk`` forms a chunk of its own)."""
    dev = counts.device
    cum = torch.cumsum(counts, 0)
    total = int(cum[-1]) if cum.numel() else 0
    if total == 0:
        return
    marks = torch.arange(1, (total - 1) // chunk + 1, device=dev, dtype=cum.dtype) * chunk
    cuts = torch.searchsorted(cum, marks, right=True)
    bounds = [0] + sorted(set(int(c) for c in cuts.tolist())) + [rows.numel()]
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        if r1 <= r0:
            continue
        cnt = counts[r0:r1]
        n = int(cnt.sum())
        if n == 0:
            continue
        seg = torch.repeat_interleave(torch.arange(r0, r1, device=dev), cnt, output_size=n)
        first = cum[seg] - counts[seg]  # exclusive prefix sum of the row
        pos = torch.arange(n, device=dev) - (first - (cum[r0] - counts[r0])) + start[seg]
        yield rows[seg], pos


def _candidate_pairs(b1, b2=None):
    """Index pairs whose axis-aligned bounding boxes overlap and that pass the bounding-circle test.

    ``b1`` (N, 5) and ``b2`` (M, 5) float64 with positive sides. With ``b2=None``, pairs ``(i, j)`` of distinct
    boxes of ``b1``, each unordered pair once (``i < j``).
    """
    dev = b1.device
    empty = torch.empty(0, dtype=torch.long, device=dev)
    same = b2 is None
    if same:
        b2 = b1
    n, m = b1.shape[0], b2.shape[0]
    if n == 0 or m == 0:
        return empty, empty
    hx1, hy1 = _half_extents(b1)
    hx2, hy2 = (hx1, hy1) if same else _half_extents(b2)
    box1 = torch.stack([b1[:, 0] - hx1, b1[:, 0] + hx1, b1[:, 1] - hy1, b1[:, 1] + hy1], 1)  # x0, x1, y0, y1
    box2 = box1 if same else torch.stack([b2[:, 0] - hx2, b2[:, 0] + hx2, b2[:, 1] - hy2, b2[:, 1] + hy2], 1)
    if n * m <= _DENSE_LIMIT:
        pieces = _dense_pairs(box1, box2, same)
    else:
        pieces = _sweep_pairs(box1, box2, same)
    r1 = 0.5 * torch.hypot(b1[:, 2], b1[:, 3])
    r2 = r1 if same else 0.5 * torch.hypot(b2[:, 2], b2[:, 3])
    out_i, out_j = [], []
    for i, j in pieces:
        d2 = (b1[i, 0] - b2[j, 0]) ** 2 + (b1[i, 1] - b2[j, 1]) ** 2
        keep = d2 <= ((r1[i] + r2[j]) * (1 + 1e-9)) ** 2
        out_i.append(i[keep])
        out_j.append(j[keep])
    if not out_i:
        return empty, empty
    return torch.cat(out_i), torch.cat(out_j)


def _dense_pairs(box1, box2, same):
    """Yield (i, j) with overlapping bounding boxes ``(x0, x1, y0, y1)``, testing all pairs in row chunks."""
    n, m = box1.shape[0], box2.shape[0]
    rows = max(1, _DENSE_CHUNK // m)
    x0b, x1b, y0b, y1b = box2.unbind(1)
    cols = torch.arange(m, device=box1.device)
    for r0 in range(0, n - 1 if same else n, rows):
        blk = box1[r0 : r0 + rows]
        x0a, x1a, y0a, y1a = (t.unsqueeze(1) for t in blk.unbind(1))
        mask = (x0b <= x1a) & (x1b >= x0a) & (y0b <= y1a) & (y1b >= y0a)
        if same:
            mask &= cols > torch.arange(r0, r0 + blk.shape[0], device=box1.device).unsqueeze(1)
        i, j = torch.nonzero(mask, as_tuple=True)
        yield i + r0, j


def _sweep_pairs(box1, box2, same):
    """Yield (i, j) with overlapping bounding boxes: sweep over ``box2`` sorted by left edge; for each box of
    ``box1`` only the contiguous run of boxes whose left edge can reach it is expanded, then filtered."""
    dev = box1.device
    order = torch.argsort(box2[:, 0])
    sx0 = box2[order, 0].contiguous()
    if same:
        rows = order
        start = torch.arange(1, box1.shape[0] + 1, device=dev)
        end = torch.searchsorted(sx0, box1[order, 1].contiguous(), right=True)
    else:
        rows = torch.arange(box1.shape[0], device=dev)
        reach = (box2[:, 1] - box2[:, 0]).max()
        start = torch.searchsorted(sx0, (box1[:, 0] - reach).contiguous(), right=False)
        end = torch.searchsorted(sx0, box1[:, 1].contiguous(), right=True)
    counts = (end - start).clamp(min=0)
    for i, pos in _expand_ranges(rows, start, counts, _SWEEP_CHUNK):
        j = order[pos]
        a, b = box1[i], box2[j]
        keep = (b[:, 0] <= a[:, 1]) & (b[:, 1] >= a[:, 0]) & (b[:, 2] <= a[:, 3]) & (b[:, 3] >= a[:, 2])
        yield i[keep], j[keep]


# Detectron2's kernels give IoU 0 to a box whose area w * h is below this (pixels squared).
_MIN_AREA = 1e-14


def _valid_boxes(b):
    """Boxes ``b`` (K, 5) float64 that take part in IoU: area ``w * h >= 1e-14``, as in detectron2's kernels. Returns
    ``(mask, boxes)``: ``boxes`` has ``|w|, |h|``, so ``(-w, -h, a)``, whose corners are those of ``(w, h, a)``, is
    that box; a box with one negative side has a negative area and is not valid."""
    valid = b[:, 2] * b[:, 3] >= _MIN_AREA
    if bool((b[:, 2:4] < 0).any()):
        b = torch.cat([b[:, :2], b[:, 2:4].abs(), b[:, 4:]], 1)
    return valid, b


def box_iou_rotated(boxes1, boxes2):
    """Pairwise IoU of rotated boxes.

    Args:
        boxes1 (Tensor[N, 5]), boxes2 (Tensor[M, 5]): ``(cx, cy, w, h, angle_degrees)``, floating point, same device.
    Returns:
        Tensor[N, M] of IoU in [0, 1], dtype of the inputs (promoted if they differ). As in detectron2's kernels, a
        box whose area ``w * h`` is below 1e-14 (zero or one negative side included) has IoU 0 with everything,
        and a box with both sides negative is the box ``(|w|, |h|)`` (same corners). Geometry is computed in
        float64; exact to ~1e-12 against a polygon clipper, so equal geometry gives exactly equal IoUs.
    Raises:
        OpInputError (a ValueError and a RuntimeError) for bad shapes, dtypes or devices; NonFiniteInputError
        for NaN or infinite coordinates.
    """
    _check_tensor("boxes1", boxes1, ndim=2, last=5)
    _check_tensor("boxes2", boxes2, ndim=2, last=5)
    _check_same_device(boxes1=boxes1, boxes2=boxes2)
    _check_finite("boxes1", boxes1)
    _check_finite("boxes2", boxes2)
    out_dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    n, m = boxes1.shape[0], boxes2.shape[0]
    dev = boxes1.device
    if n == 0 or m == 0:
        return torch.zeros((n, m), dtype=out_dtype, device=dev)
    with torch.no_grad():
        ok1, b1 = _valid_boxes(boxes1.detach().to(torch.float64))
        ok2, b2 = _valid_boxes(boxes2.detach().to(torch.float64))
        idx1 = torch.nonzero(ok1).squeeze(1)
        idx2 = torch.nonzero(ok2).squeeze(1)
        out = torch.zeros((n, m), dtype=out_dtype, device=dev)
        if idx1.numel() and idx2.numel():
            c1, c2 = b1[idx1], b2[idx2]
            i, j = _candidate_pairs(c1, c2)
            if i.numel():
                out[idx1[i], idx2[j]] = _pair_iou(c1[i], c2[j]).to(out_dtype)
        return out


# ----------------------------------------------------------------------------------------------------------------
# rotated NMS
# ----------------------------------------------------------------------------------------------------------------
def _greedy(n, src, dst):
    """Greedy suppression over a sparse graph. Nodes are ranks ``0..n-1`` (0 = best score); an edge ``src -> dst``
    (``src < dst``) means ``src`` suppresses ``dst`` if ``src`` is kept. Returns the kept ranks (ascending)."""
    removed = np.zeros(n, dtype=bool)
    if src.size:
        order = np.argsort(src, kind="stable")
        src, dst = src[order], dst[order]
        heads = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
        tails = np.r_[heads[1:], src.size]
        for node, a, b in zip(src[heads].tolist(), heads.tolist(), tails.tolist()):
            if not removed[node]:
                removed[dst[a:b]] = True
    return np.flatnonzero(~removed)


def _nms(boxes, scores, iou_threshold, idxs=None):
    _check_tensor("boxes", boxes, ndim=2, last=5)
    _check_tensor("scores", scores, ndim=1)
    if scores.shape[0] != boxes.shape[0]:
        raise OpInputError(f"scores: expected shape ({boxes.shape[0]},) to match boxes, got {_describe(scores)}")
    tensors = {"boxes": boxes, "scores": scores}
    if idxs is not None:
        _check_tensor("idxs", idxs, ndim=1, floating=False)
        if idxs.shape[0] != boxes.shape[0]:
            raise OpInputError(f"idxs: expected shape ({boxes.shape[0]},) to match boxes, got {_describe(idxs)}")
        if idxs.is_floating_point() or idxs.is_complex() or idxs.dtype == torch.bool:
            raise OpInputError(f"idxs: expected an integer tensor of category indices, got {_describe(idxs)}")
        tensors["idxs"] = idxs
    _check_same_device(**tensors)
    _check_finite("boxes", boxes)
    _check_finite("scores", scores)
    thr = _as_float("iou_threshold", iou_threshold)
    dev = boxes.device
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=dev)
    with torch.no_grad():
        order = torch.sort(scores.detach(), descending=True, stable=True).indices
        if thr >= 1.0:  # IoU never exceeds 1: nothing is suppressed
            return order
        if thr < 0.0 and idxs is None:  # every IoU (>= 0) exceeds it: the best box suppresses all others
            return order[:1]
        ok, b = _valid_boxes(boxes.detach().to(torch.float64)[order])
        cls = idxs[order] if idxs is not None else None
        if thr < 0.0:  # per class, only the best box of each class survives
            _, inv = torch.unique(cls, return_inverse=True)
            seen = torch.full((int(inv.max()) + 1,), n, dtype=torch.long, device=dev)
            seen.scatter_reduce_(0, inv, torch.arange(n, device=dev), reduce="amin")
            first = seen[inv] == torch.arange(n, device=dev)
            return order[first]
        valid = torch.nonzero(ok).squeeze(1)
        bv = b[valid]
        i, j = _candidate_pairs(bv)
        i, j = valid[i], valid[j]
        if cls is not None and i.numel():
            same = cls[i] == cls[j]
            i, j = i[same], j[same]
        if i.numel():
            # Upper bound of the IoU: the intersection lies in both boxes and in the overlap of their bounding
            # boxes, so inter <= min(area_i, area_j, aabb_overlap) and IoU <= inter / (area_i + area_j - inter).
            # Pairs whose bound does not exceed the threshold cannot suppress each other.
            a = b[:, 2] * b[:, 3]
            hx, hy = _half_extents(b)
            ovx = torch.minimum(b[i, 0] + hx[i], b[j, 0] + hx[j]) - torch.maximum(b[i, 0] - hx[i], b[j, 0] - hx[j])
            ovy = torch.minimum(b[i, 1] + hy[i], b[j, 1] + hy[j]) - torch.maximum(b[i, 1] - hy[i], b[j, 1] - hy[j])
            ub = torch.minimum(torch.minimum(a[i], a[j]), ovx.clamp(min=0) * ovy.clamp(min=0))
            can = ub * (1 + 1e-9) > thr * (a[i] + a[j] - ub)
            i, j = i[can], j[can]
        if i.numel():
            hit = _pair_iou(b[i], b[j]) > thr
            i, j = i[hit], j[hit]
        src = torch.minimum(i, j).cpu().numpy()
        dst = torch.maximum(i, j).cpu().numpy()
        kept = torch.from_numpy(_greedy(n, src, dst)).to(dev)
        return order[kept]


def nms_rotated(boxes, scores, iou_threshold):
    """Greedy non-maximum suppression of rotated boxes.

    Args:
        boxes (Tensor[N, 5]): ``(cx, cy, w, h, angle_degrees)``, floating point.
        scores (Tensor[N]): floating point, same device.
        iou_threshold (float): a box is suppressed by a kept, higher-scoring box when their IoU is strictly greater.
    Returns:
        int64 Tensor[K] of kept indices, sorted by decreasing score (ties: lower index first), on ``boxes.device``.

    Equal to brute-force greedy NMS with exact IoU. Only pairs whose bounding boxes overlap and whose area ratio
    allows an IoU above the threshold are clipped exactly; the greedy pass runs over that sparse graph.
    """
    return _nms(boxes, scores, iou_threshold)


def batched_nms_rotated(boxes, scores, idxs, iou_threshold):
    """Rotated NMS done independently per category ``idxs`` (Tensor[N] of integers); same return as
    :func:`nms_rotated` (kept indices over all categories, by decreasing score)."""
    return _nms(boxes, scores, iou_threshold, idxs=idxs)


# ----------------------------------------------------------------------------------------------------------------
# RoIAlignRotated
# ----------------------------------------------------------------------------------------------------------------
def _check_rois(rois, batch):
    """Values of ``rois`` (shape, dtype and device are checked before)."""
    _check_finite("rois", rois)
    if rois.shape[0]:
        r = rois.detach()
        bidx = r[:, 0]
        if bool((bidx != torch.trunc(bidx)).any()) or bool((bidx < 0).any()) or bool((bidx >= batch).any()):
            raise OpInputError(
                f"rois[:, 0]: expected integer batch indices in [0, {batch}), got values in "
                f"[{float(bidx.min())}, {float(bidx.max())}]"
            )
        if bool((r[:, 3:5] < 0).any()):
            raise OpInputError("rois[:, 3:5]: expected non-negative widths and heights (detectron2 asserts this too)")


def _roi_chunks(rois, spatial_scale, pooled_h, pooled_w, sampling_ratio):
    """Split RoIs into consecutive runs holding at most ~_ROI_SAMPLE_CHUNK bilinear samples each."""
    r = rois.detach().to(torch.float64)
    if sampling_ratio > 0:
        per = torch.full((r.shape[0],), sampling_ratio * sampling_ratio, dtype=torch.long, device=r.device)
    else:
        gh = torch.ceil(r[:, 4] * spatial_scale / pooled_h).long()
        gw = torch.ceil(r[:, 3] * spatial_scale / pooled_w).long()
        per = gh * gw
    per = (per * pooled_h * pooled_w).cpu()
    bounds, acc, s = [], 0, 0
    for k, p in enumerate(per.tolist()):
        if acc and acc + p > _ROI_SAMPLE_CHUNK:
            bounds.append((s, k))
            s, acc = k, 0
        acc += p
    bounds.append((s, r.shape[0]))
    return bounds


def _roi_plan(rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, height, width, aligned):
    """Bilinear sampling plan of RoIAlignRotated as a sparse linear map from input pixels to output bins.

    Returns ``(pix, weight, bag, n_bins)``: entry ``e`` adds ``weight[e] * input_pixel[pix[e]]`` to output bin
    ``bag[e]`` (bins numbered ``(roi * pooled_h + ph) * pooled_w + pw``, pixels ``(n * H + y) * W + x``), entries
    sorted by bin. Follows detectron2's kernel: centre offset -0.5 when aligned, sampling grid ``sampling_ratio`` or
    ``ceil(roi_size / pooled)`` per bin, samples outside ``[-1, H] x [-1, W]`` dropped, coordinates in
    ``[-1, 0)`` clamped to 0 and beyond ``H - 1`` to ``H - 1``, average over the grid.
    """
    dev = rois.device
    r = rois.detach().to(torch.float64)
    nroi = r.shape[0]
    nb_per = pooled_h * pooled_w
    off = 0.5 if aligned else 0.0
    bidx = r[:, 0].long()
    cx = r[:, 1] * spatial_scale - off
    cy = r[:, 2] * spatial_scale - off
    rw = r[:, 3] * spatial_scale
    rh = r[:, 4] * spatial_scale
    th = torch.deg2rad(r[:, 5])
    ct, st = torch.cos(th), torch.sin(th)
    bin_h, bin_w = rh / pooled_h, rw / pooled_w
    if sampling_ratio > 0:
        gh = torch.full((nroi,), sampling_ratio, dtype=torch.long, device=dev)
        gw = gh
    else:
        gh = torch.ceil(rh / pooled_h).long()
        gw = torch.ceil(rw / pooled_w).long()
    per_bin = gh * gw
    count = per_bin.clamp(min=1).to(torch.float64)
    n_bins = nroi * nb_per
    bin_cnt = per_bin.repeat_interleave(nb_per)
    total = int(bin_cnt.sum())
    if total == 0:
        z = torch.empty(0, dtype=torch.long, device=dev)
        return z, torch.empty(0, dtype=torch.float64, device=dev), z, n_bins
    bins = torch.repeat_interleave(torch.arange(n_bins, device=dev), bin_cnt, output_size=total)
    first = torch.cumsum(bin_cnt, 0) - bin_cnt
    k = torch.arange(total, device=dev) - first[bins]
    roi = torch.div(bins, nb_per, rounding_mode="floor")
    rem = bins - roi * nb_per
    ph = torch.div(rem, pooled_w, rounding_mode="floor")
    pw = rem - ph * pooled_w
    gws, ghs = gw[roi], gh[roi]
    iy = torch.div(k, gws, rounding_mode="floor")
    ix = k - iy * gws
    yy = -0.5 * rh[roi] + ph * bin_h[roi] + (iy + 0.5) * bin_h[roi] / ghs
    xx = -0.5 * rw[roi] + pw * bin_w[roi] + (ix + 0.5) * bin_w[roi] / gws
    c, s = ct[roi], st[roi]
    y = yy * c - xx * s + cy[roi]
    x = yy * s + xx * c + cx[roi]
    inside = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
    y = y.clamp(min=0.0)
    x = x.clamp(min=0.0)
    y0 = torch.floor(y).long()
    x0 = torch.floor(x).long()
    top_y = y0 >= height - 1
    top_x = x0 >= width - 1
    y0 = torch.where(top_y, torch.full_like(y0, height - 1), y0)
    x0 = torch.where(top_x, torch.full_like(x0, width - 1), x0)
    y = torch.where(top_y, y0.to(y.dtype), y)
    x = torch.where(top_x, x0.to(x.dtype), x)
    y1 = torch.where(top_y, y0, y0 + 1)
    x1 = torch.where(top_x, x0, x0 + 1)
    ly, lx = y - y0, x - x0
    hy, hx = 1.0 - ly, 1.0 - lx
    scale = inside.to(torch.float64) / count[roi]
    base = bidx[roi] * (height * width)
    pix = torch.stack([base + y0 * width + x0, base + y0 * width + x1, base + y1 * width + x0, base + y1 * width + x1], 1)
    wts = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], 1) * scale.unsqueeze(1)
    bag = bins.unsqueeze(1).expand(-1, 4)
    keep = (wts != 0).reshape(-1)
    return pix.reshape(-1)[keep], wts.reshape(-1)[keep], bag.reshape(-1)[keep], n_bins


def _offsets(bag, n):
    cnt = torch.bincount(bag, minlength=n)
    off = torch.zeros(n + 1, dtype=torch.long, device=bag.device)
    torch.cumsum(cnt, 0, out=off[1:])
    return off


def _compute_dtype(dtype):
    # embedding_bag kernels: float32 / float64 everywhere; half types are accumulated in float32
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _check_roi_args(spatial_scale, pooled_h, pooled_w, sampling_ratio):
    spatial_scale = _as_float("spatial_scale", spatial_scale)
    if not spatial_scale > 0 or math.isinf(spatial_scale):
        raise OpInputError(f"spatial_scale: expected a positive finite number, got {spatial_scale}")
    pooled_h = _as_int("pooled_height", pooled_h, minimum=1)
    pooled_w = _as_int("pooled_width", pooled_w, minimum=1)
    sampling_ratio = _as_int("sampling_ratio", sampling_ratio)
    return spatial_scale, pooled_h, pooled_w, sampling_ratio


def roi_align_rotated_forward(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned=True):
    """RoIAlignRotated forward, detectron2 semantics.

    Args:
        input (Tensor[N, C, H, W]): floating-point feature map.
        rois (Tensor[R, 6]): ``(batch_index, cx, cy, w, h, angle_degrees)`` in input-image pixels, same device.
        spatial_scale (float): multiplies the RoI coordinates (e.g. 1/16 for a stride-16 map).
        pooled_height, pooled_width (int): output bins.
        sampling_ratio (int): samples per bin along each axis; <= 0 means ``ceil(roi_size / pooled_size)``.
        aligned (bool): detectron2's behaviour (True) shifts coordinates by -0.5 pixel ("continuous" coordinates);
            False leaves them as they are. Not part of detectron2's signature (keyword only there).
    Returns:
        Tensor[R, C, pooled_height, pooled_width], dtype of ``input``.
    """
    _check_tensor("input", input, ndim=4)
    _check_tensor("rois", rois, ndim=2, last=6)
    _check_same_device(input=input, rois=rois)
    _check_rois(rois, input.shape[0])
    spatial_scale, ph, pw, sr = _check_roi_args(spatial_scale, pooled_height, pooled_width, sampling_ratio)
    n, ch, h, w = input.shape
    nroi = rois.shape[0]
    out = torch.zeros((nroi, ph, pw, ch), dtype=input.dtype, device=input.device)
    if nroi == 0 or ch == 0 or h == 0 or w == 0:
        return out.permute(0, 3, 1, 2).contiguous()
    cdt = _compute_dtype(input.dtype)
    with torch.no_grad():
        table = input.detach().to(cdt).permute(0, 2, 3, 1).reshape(n * h * w, ch)
        flat = out.view(nroi * ph * pw, ch)
        for r0, r1 in _roi_chunks(rois, spatial_scale, ph, pw, sr):
            pix, wts, bag, nb = _roi_plan(rois[r0:r1], spatial_scale, ph, pw, sr, h, w, aligned)
            if pix.numel() == 0:
                continue
            res = torch.nn.functional.embedding_bag(
                pix, table, _offsets(bag, nb), mode="sum", per_sample_weights=wts.to(cdt), include_last_offset=True
            )
            flat[r0 * ph * pw : r1 * ph * pw] = res.to(out.dtype)
    return out.permute(0, 3, 1, 2).contiguous()


def roi_align_rotated_backward(
    grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, sampling_ratio,
    aligned=True,
):
    """RoIAlignRotated backward: gradient w.r.t. the input, Tensor[batch_size, channels, height, width].

    ``grad`` is the gradient of the output, Tensor[R, channels, pooled_height, pooled_width]; the other arguments
    are those of :func:`roi_align_rotated_forward` plus the input's shape.
    """
    _check_tensor("grad", grad, ndim=4)
    n = _as_int("batch_size", batch_size, minimum=0)
    ch = _as_int("channels", channels, minimum=0)
    h = _as_int("height", height, minimum=0)
    w = _as_int("width", width, minimum=0)
    _check_tensor("rois", rois, ndim=2, last=6)
    _check_same_device(grad=grad, rois=rois)
    _check_rois(rois, n)
    spatial_scale, ph, pw, sr = _check_roi_args(spatial_scale, pooled_height, pooled_width, sampling_ratio)
    nroi = rois.shape[0]
    if tuple(grad.shape) != (nroi, ch, ph, pw):
        raise OpInputError(f"grad: expected shape {(nroi, ch, ph, pw)}, got {_describe(grad)}")
    cdt = _compute_dtype(grad.dtype)
    acc = torch.zeros((n * h * w, ch), dtype=cdt, device=grad.device)
    if nroi and ch and h and w:
        with torch.no_grad():
            g = grad.detach().to(cdt).permute(0, 2, 3, 1).reshape(nroi * ph * pw, ch)
            for r0, r1 in _roi_chunks(rois, spatial_scale, ph, pw, sr):
                pix, wts, bag, _ = _roi_plan(rois[r0:r1], spatial_scale, ph, pw, sr, h, w, aligned)
                if pix.numel() == 0:
                    continue
                order = torch.argsort(pix)
                acc += torch.nn.functional.embedding_bag(
                    bag[order] + r0 * ph * pw,
                    g,
                    _offsets(pix[order], n * h * w),
                    mode="sum",
                    per_sample_weights=wts[order].to(cdt),
                    include_last_offset=True,
                )
    return acc.view(n, h, w, ch).permute(0, 3, 1, 2).contiguous().to(grad.dtype)


# ----------------------------------------------------------------------------------------------------------------
# deformable convolution through torchvision
# ----------------------------------------------------------------------------------------------------------------
def _deform_check(input, weight, offset, mask, kh, kw, group, deformable_group, bias=None):
    _check_tensor("input", input, ndim=4)
    _check_tensor("weight", weight, ndim=4)
    _check_tensor("offset", offset, ndim=4)
    tensors = {"input": input, "weight": weight, "offset": offset}
    if mask is not None:
        _check_tensor("mask", mask, ndim=4)
        tensors["mask"] = mask
    if bias is not None:
        _check_tensor("bias", bias)
        tensors["bias"] = bias
    _check_same_device(**tensors)
    if tuple(weight.shape[2:]) != (kh, kw):
        raise OpInputError(f"weight: expected kernel size ({kh}, {kw}), got {_describe(weight)}")
    if input.shape[1] != weight.shape[1] * group:
        raise OpInputError(
            f"weight: expected {input.shape[1] // max(group, 1)} input channels per group "
            f"({input.shape[1]} channels, {group} groups), got {_describe(weight)}"
        )
    if offset.shape[1] != 2 * deformable_group * kh * kw:
        raise OpInputError(
            f"offset: expected {2 * deformable_group * kh * kw} channels (2 x {deformable_group} deformable groups "
            f"x {kh} x {kw}), got {_describe(offset)}"
        )
    if mask is not None and mask.shape[1] != deformable_group * kh * kw:
        raise OpInputError(f"mask: expected {deformable_group * kh * kw} channels, got {_describe(mask)}")


def _deform(input, offset, weight, bias, mask, dh, dw, ph, pw, dilh, dilw):
    return torchvision.ops.deform_conv2d(
        input, offset, weight, bias, stride=(dh, dw), padding=(ph, pw), dilation=(dilh, dilw), mask=mask
    )


def _write(dst, value, name, accumulate):
    if tuple(dst.shape) != tuple(value.shape):
        if accumulate and dst.numel():
            raise OpInputError(f"{name}: expected shape {tuple(value.shape)}, got {_describe(dst)}")
        dst.resize_(value.shape).zero_()
    if accumulate:
        dst.add_(value.to(dst.dtype))
    else:
        dst.copy_(value)


def deform_conv_forward(
    input, weight, offset, output, columns, ones, kW, kH, dW, dH, padW, padH, dilationW, dilationH, group,
    deformable_group, im2col_step,
):
    """Deformable convolution (v1) forward into ``output`` (resized if needed); ``columns``/``ones`` unused."""
    _deform_check(input, weight, offset, None, kH, kW, group, deformable_group)
    with torch.no_grad():
        out = _deform(input, offset, weight, None, None, dH, dW, padH, padW, dilationH, dilationW)
    _write(output, out, "output", accumulate=False)
    return output


def _deform_grads(input, offset, weight, bias, mask, grad_output, dh, dw, ph, pw, dilh, dilw, want):
    leaves = {
        "input": input.detach().requires_grad_("input" in want),
        "offset": offset.detach().requires_grad_("offset" in want),
        "weight": weight.detach().requires_grad_("weight" in want),
        "bias": bias.detach().requires_grad_("bias" in want) if bias is not None else None,
        "mask": mask.detach().requires_grad_("mask" in want) if mask is not None else None,
    }
    with torch.enable_grad():
        out = _deform(
            leaves["input"], leaves["offset"], leaves["weight"], leaves["bias"], leaves["mask"], dh, dw, ph, pw,
            dilh, dilw,
        )
        if tuple(grad_output.shape) != tuple(out.shape):
            raise OpInputError(f"grad_output: expected shape {tuple(out.shape)}, got {_describe(grad_output)}")
        names = [k for k in want if leaves.get(k) is not None]
        grads = torch.autograd.grad(out, [leaves[k] for k in names], grad_output.to(out.dtype), allow_unused=True)
    return {k: (g if g is not None else torch.zeros_like(leaves[k])) for k, g in zip(names, grads)}


def deform_conv_backward_input(
    input, offset, gradOutput, gradInput, gradOffset, weight, columns, kW, kH, dW, dH, padW, padH, dilationW,
    dilationH, group, deformable_group, im2col_step,
):
    """Gradients of deformable convolution w.r.t. input and offset, added into ``gradInput`` / ``gradOffset``
    (detectron2 passes zero-filled buffers), computed by autograd through ``torchvision.ops.deform_conv2d``."""
    _deform_check(input, weight, offset, None, kH, kW, group, deformable_group)
    g = _deform_grads(
        input, offset, weight, None, None, gradOutput, dH, dW, padH, padW, dilationH, dilationW, ("input", "offset")
    )
    _write(gradInput, g["input"], "gradInput", accumulate=True)
    _write(gradOffset, g["offset"], "gradOffset", accumulate=True)


def deform_conv_backward_filter(
    input, offset, gradOutput, gradWeight, columns, ones, kW, kH, dW, dH, padW, padH, dilationW, dilationH, group,
    deformable_group, scale, im2col_step,
):
    """Gradient of deformable convolution w.r.t. the weight, ``scale`` times it added into ``gradWeight``."""
    _deform_check(input, gradWeight, offset, None, kH, kW, group, deformable_group)
    g = _deform_grads(
        input, offset, gradWeight, None, None, gradOutput, dH, dW, padH, padW, dilationH, dilationW, ("weight",)
    )
    _write(gradWeight, float(scale) * g["weight"], "gradWeight", accumulate=True)


def modulated_deform_conv_forward(
    input, weight, bias, ones, offset, mask, output, columns, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
    dilation_h, dilation_w, group, deformable_group, with_bias,
):
    """Modulated deformable convolution (v2) forward into ``output``; ``bias`` used only when ``with_bias``."""
    bias = bias if with_bias else None
    _deform_check(input, weight, offset, mask, kernel_h, kernel_w, group, deformable_group, bias)
    with torch.no_grad():
        out = _deform(input, offset, weight, bias, mask, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w)
    _write(output, out, "output", accumulate=False)
    return output


def modulated_deform_conv_backward(
    input, weight, bias, ones, offset, mask, columns, grad_input, grad_weight, grad_bias, grad_offset, grad_mask,
    grad_output, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
    deformable_group, with_bias,
):
    """Gradients of modulated deformable convolution, added into the given (zero-filled) gradient buffers."""
    b = bias if with_bias else None
    _deform_check(input, weight, offset, mask, kernel_h, kernel_w, group, deformable_group, b)
    want = ("input", "offset", "mask", "weight") + (("bias",) if with_bias else ())
    g = _deform_grads(
        input, offset, weight, b, mask, grad_output, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, want
    )
    _write(grad_input, g["input"], "grad_input", accumulate=True)
    _write(grad_offset, g["offset"], "grad_offset", accumulate=True)
    _write(grad_mask, g["mask"], "grad_mask", accumulate=True)
    _write(grad_weight, g["weight"], "grad_weight", accumulate=True)
    if with_bias:
        _write(grad_bias, g["bias"], "grad_bias", accumulate=True)


# ----------------------------------------------------------------------------------------------------------------
# environment information (detectron2.utils.collect_env)
# ----------------------------------------------------------------------------------------------------------------
def get_compiler_version():
    """No C++ compiler was involved: the ops are PyTorch code."""
    return "none (fasttcm PyTorch ops, nothing compiled)"


def get_cuda_version():
    """No CUDA code was compiled; the ops run on CUDA through PyTorch's own kernels."""
    return f"none (fasttcm PyTorch ops; CUDA only through torch, built with CUDA {torch.version.cuda})"


def has_cuda():
    """Whether this ``_C`` holds compiled CUDA kernels: never (collect_env uses this to skip inspecting them).
    The ops still run on CUDA tensors through PyTorch."""
    return False


# ----------------------------------------------------------------------------------------------------------------
# detectron2's fast COCO evaluation (numpy, fasttcm/layers/_coco_eval.py, loaded by path like this file)
# ----------------------------------------------------------------------------------------------------------------
def _load_sibling(stem):
    name = f"fasttcm.layers.{stem}"
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{stem}.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[name]
            raise
    return mod


_coco_eval = _load_sibling("_coco_eval")
InstanceAnnotation = _coco_eval.InstanceAnnotation
ImageEvaluation = _coco_eval.ImageEvaluation
COCOevalEvaluateImages = _coco_eval.COCOevalEvaluateImages
COCOevalAccumulate = _coco_eval.COCOevalAccumulate


# ----------------------------------------------------------------------------------------------------------------
# missing ops
# ----------------------------------------------------------------------------------------------------------------
class MissingCompiledOpError(AttributeError, NotImplementedError):
    """An op of detectron2's compiled ``_C`` that fasttcm does not provide (an AttributeError, so ``hasattr`` and
    ``getattr(_C, name, default)`` behave, and a NotImplementedError)."""


def __getattr__(name):
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    raise MissingCompiledOpError(
        f"detectron2._C.{name} is not available: detectron2 was installed without compiled ops and fasttcm's "
        "PyTorch stand-in does not provide it (fasttcm implements rotated IoU/NMS, RoIAlignRotated, deformable "
        "convolution and the fast COCO evaluation; install a compiled detectron2 for it)."
    )


# ----------------------------------------------------------------------------------------------------------------
# installation as detectron2._C, torch.ops.detectron2.* registration, lookup of a compiled detectron2's ops
# ----------------------------------------------------------------------------------------------------------------
_LIBRARIES = []  # keep the torch.library registrations alive
_REGISTERED = set()  # torch.ops.detectron2 ops registered by this module


def _compiled_detectron2_C():
    """Path of a compiled ``_C`` extension inside the installed detectron2 package, or None (detectron2 itself is
    located without being imported)."""
    try:
        spec = importlib.util.find_spec("detectron2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for fname in names:
            if fname.startswith("_C") and (
                fname.endswith(".so") or fname.endswith(".pyd")
                or any(fname == "_C" + s for s in importlib.machinery.EXTENSION_SUFFIXES)
            ):
                return os.path.join(folder, fname)
    return None


def _detectron2_installed():
    try:
        return importlib.util.find_spec("detectron2") is not None
    except (ImportError, ValueError):
        return False


def _torch_op(name, namespace=None):
    """``torch.ops.detectron2.<name>`` (or ``namespace.<name>``), None when no library defines it."""
    try:
        return getattr(torch.ops.detectron2 if namespace is None else namespace, name)
    except (AttributeError, RuntimeError):
        return None


def _torch_op_exists(name="nms_rotated"):
    return _torch_op(name) is not None


def _nms_rotated_op(dets, scores, iou_threshold):
    return nms_rotated(dets, scores, iou_threshold)


def _box_iou_rotated_op(boxes1, boxes2):
    return box_iou_rotated(boxes1, boxes2)


def _roi_align_rotated_forward_op(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio):
    return roi_align_rotated_forward(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio)


def _roi_align_rotated_backward_op(
    grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, sampling_ratio
):
    return roi_align_rotated_backward(
        grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, sampling_ratio
    )


# The ops compiled detectron2 registers as torch.ops.detectron2.*, with the schemas of its C++ signatures:
# v0.6 registers nms_rotated; its main branch also box_iou_rotated and RoIAlignRotated (which it no longer exposes
# as attributes of detectron2._C).
TORCH_OPS = {
    "nms_rotated": ("nms_rotated(Tensor dets, Tensor scores, float iou_threshold) -> Tensor", _nms_rotated_op),
    "box_iou_rotated": ("box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor", _box_iou_rotated_op),
    "roi_align_rotated_forward": (
        "roi_align_rotated_forward(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
        "int pooled_width, int sampling_ratio) -> Tensor",
        _roi_align_rotated_forward_op,
    ),
    "roi_align_rotated_backward": (
        "roi_align_rotated_backward(Tensor grad, Tensor rois, float spatial_scale, int pooled_height, "
        "int pooled_width, int batch_size, int channels, int height, int width, int sampling_ratio) -> Tensor",
        _roi_align_rotated_backward_op,
    ),
}


def _register_torch_ops(names):
    """Register each of ``names`` (keys of :data:`TORCH_OPS`) as ``torch.ops.detectron2.<name>`` unless some library
    already defines it. Returns the names registered now."""
    missing = [n for n in names if not _torch_op_exists(n)]
    if not missing:
        return []
    lib = torch.library.Library("detectron2", "FRAGMENT")
    done = []
    for name in missing:
        schema, fn = TORCH_OPS[name]
        try:
            lib.define(schema)
        except RuntimeError:  # defined concurrently by another copy of this module
            continue
        lib.impl(name, fn, "CompositeImplicitAutograd")
        done.append(name)
    if done:
        _LIBRARIES.append(lib)
        _REGISTERED.update(done)
    return done


def _register_torch_op():
    """Register ``torch.ops.detectron2.nms_rotated`` if missing (the only one detectron2 0.6's Python calls);
    True when it was registered now."""
    return bool(_register_torch_ops(["nms_rotated"]))


def install_as_detectron2_C():
    """Make this module ``detectron2._C`` when detectron2 is installed without its compiled extension, and make sure
    ``torch.ops.detectron2.nms_rotated`` exists. A compiled detectron2 is never shadowed: its extension is loaded
    (so it registers its own ops) and ours is registered only if ``nms_rotated`` is still missing. Without a
    compiled extension all of :data:`TORCH_OPS` are registered, so a detectron2 whose Python calls them there (its
    main branch) runs on fasttcm's ops too."""
    if _compiled_detectron2_C() is not None:
        try:
            importlib.import_module("detectron2._C")
        except ImportError as e:
            warnings.warn(
                f"detectron2 has a compiled _C extension that fails to import ({e}); detectron2.layers will not "
                "import until it is rebuilt or removed (fasttcm then supplies detectron2._C)"
            )
        _register_torch_op()
        return
    if _detectron2_installed() and "detectron2._C" not in sys.modules:
        me = sys.modules.get(__name__) or sys.modules.get("fasttcm.layers._C")
        if me is not None:
            sys.modules["detectron2._C"] = me
    _register_torch_ops(list(TORCH_OPS))


def find_op(name, c_module, ops_namespace, exclude=()):
    """``c_module.<name>`` if it exists, else ``ops_namespace.<name>`` unless ``name`` is in ``exclude``, else None.

    The lookup behind :func:`compiled_op`, separate so it can be tested with stand-ins for both installs: detectron2
    0.6 exposes its ops as attributes of ``detectron2._C``; its main branch registers the rotated ones only as
    ``torch.ops.detectron2.*``."""
    fn = getattr(c_module, name, None) if c_module is not None else None
    if fn is not None:
        return fn
    if name in exclude:
        return None
    return _torch_op(name, ops_namespace)


def compiled_op(name):
    """The compiled detectron2's implementation of op ``name`` (e.g. ``"box_iou_rotated"``), from ``detectron2._C``
    or ``torch.ops.detectron2``, whichever holds it on the installed detectron2; None when detectron2 has no
    compiled ``_C`` (fasttcm's ops are in use), when the extension fails to import, or when it lacks the op."""
    if _compiled_detectron2_C() is None:
        return None
    try:
        mod = importlib.import_module("detectron2._C")
    except ImportError:
        return None
    if getattr(mod, "__fasttcm_ops__", False):
        return None
    return find_op(name, mod, torch.ops.detectron2, exclude=_REGISTERED)


if _compiled_detectron2_C() is None:
    _register_torch_ops(list(TORCH_OPS))
