"""Polygon-aware augmentations for text detection, as Detectron2 ``Augmentation`` / ``Transform`` objects.

Coordinates
-----------
Polygons are ``(N, 2)`` float arrays of ``(x, y)`` in **pixels** of the current image, continuous coordinates in
which pixel ``(i, j)`` covers ``[i, i+1] x [j, j+1]`` (the convention of :mod:`fasttcm.structures.polygons` and of
Detectron2's transforms). Every geometric transform used here (resize, flip, rotation, crop) is affine, and
``Transform.apply_coords`` maps polygon vertices **exactly**: a transformed polygon is the exact image of the
original one, so there is nothing to approximate. Only leaving the image needs a decision, taken once, at the end,
by :func:`clip_polygons_to_image` (see there).

Pieces
------
* :class:`TextAugInput`: an ``AugInput`` that also carries the polygons (and their don't-care flags), so
  augmentations can look at the text (the crop does) and polygons move with every transform.
* :class:`RandomColorJitter` -> :class:`PhotometricTransform`: brightness, contrast and saturation (geometry
  untouched), aware of the channel order (``BGR``/``RGB``).
* :class:`RandomScaleRange`: scale the image by a random factor from a range (DB's ``[0.5, 3]`` recipe); the
  alternative, Detectron2's ``ResizeShortestEdge``, is used as is.
* :class:`TextRandomCrop`: a DB-style crop that cuts only between text instances when it can, then scales the crop
  to fit the target size (no padding here; batches are padded by the model's ``ImageList``).
* Rotation uses Detectron2's ``RandomRotation`` (see :func:`build_text_augmentations`); horizontal flip uses
  Detectron2's ``RandomFlip`` (off by default for text: it mirrors the characters).
"""
from __future__ import annotations

import logging
from typing import List, Sequence, Tuple

import numpy as np
import shapely
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.data import transforms as T
from detectron2.data.transforms import CropTransform, NoOpTransform, ResizeTransform, Transform, TransformList
from shapely.geometry import Polygon, box as shapely_box

from ..structures.polygons import exterior, polygon_parts

logger = logging.getLogger(__name__)

__all__ = [
    "TextAugInput",
    "PhotometricTransform",
    "RandomColorJitter",
    "RandomScaleRange",
    "TextRandomCrop",
    "clip_polygons_to_image",
    "build_text_augmentations",
]


class TextAugInput(T.AugInput):
    """``AugInput`` with text polygons.

    Attributes:
        image: (H, W, C) uint8 (or float) image.
        polygons: list of ``(N_i, 2)`` float64 arrays, pixels of ``image`` (moved by every transform).
        ignore: (M,) bool array, True for don't-care instances (``###``); not changed by transforms.

    A flip reverses the vertices' orientation (clockwise becomes counter-clockwise); nothing downstream in
    training depends on it (targets are rasterized, clipping uses shapely).
    """

    def __init__(self, image: np.ndarray, *, polygons: Sequence[np.ndarray] = (), ignore=None):
        super().__init__(image)
        self.polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
        self.ignore = (
            np.zeros(len(self.polygons), dtype=bool) if ignore is None else np.asarray(ignore, dtype=bool).copy()
        )
        if len(self.ignore) != len(self.polygons):
            raise ValueError(f"{len(self.polygons)} polygons but {len(self.ignore)} ignore flags")

    def transform(self, tfm: Transform) -> None:
        super().transform(tfm)
        self.polygons = [tfm.apply_coords(p.copy()).astype(np.float64) for p in self.polygons]


# ----------------------------------------------------------------------------------------------- colour ----
class PhotometricTransform(Transform):
    """Brightness, contrast and saturation changes, applied in a given order; geometry is untouched.

    Args:
        brightness, contrast, saturation: multiplicative factors (1 = unchanged).
        order: a permutation of ``("brightness", "contrast", "saturation")``.
        image_format: channel order of the images it will see (``"BGR"``, ``"RGB"``; ``"L"``/other: no saturation).

    ``brightness`` scales all values; ``contrast`` blends with the image's mean grey level; ``saturation`` blends
    with the per-pixel grey (ITU-R 601 luma weights in the right channel order). Output keeps the input dtype;
    uint8 images are clipped to [0, 255].
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, order: Sequence[str],
                 image_format: str = "BGR"):
        super().__init__()
        self._set_attributes(locals())

    def _grey(self, img: np.ndarray) -> np.ndarray:
        w = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # R, G, B
        if self.image_format == "BGR":
            w = w[::-1]
        return (img * w).sum(axis=-1, keepdims=True)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        dtype = img.dtype
        x = img.astype(np.float32)
        colour = x.ndim == 3 and x.shape[-1] == 3 and self.image_format in ("BGR", "RGB")
        for op in self.order:
            if op == "brightness":
                x = x * self.brightness
            elif op == "contrast":
                mean = float(self._grey(x).mean()) if colour else float(x.mean())
                x = (x - mean) * self.contrast + mean
            elif op == "saturation" and colour:
                g = self._grey(x)
                x = (x - g) * self.saturation + g
        if dtype == np.uint8:
            return np.clip(np.rint(x), 0, 255).astype(np.uint8)
        return x.astype(dtype)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return NoOpTransform()


class RandomColorJitter(T.Augmentation):
    """With probability ``prob``, jitter brightness, contrast and saturation in random order.

    Each factor is drawn uniformly from ``[1 - s, 1 + s]`` for its strength ``s`` (0 disables that part).
    """

    def __init__(self, brightness: float = 0.3, contrast: float = 0.3, saturation: float = 0.3,
                 prob: float = 0.5, image_format: str = "BGR"):
        super().__init__()
        for name, s in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= s < 1:
                raise ValueError(f"colour jitter {name} strength must lie in [0, 1), got {s}")
        self._init(locals())

    def get_transform(self, image):
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        f = [float(np.random.uniform(1 - s, 1 + s)) for s in (self.brightness, self.contrast, self.saturation)]
        order = list(np.random.permutation(["brightness", "contrast", "saturation"]))
        return PhotometricTransform(f[0], f[1], f[2], order, self.image_format)


# ----------------------------------------------------------------------------------------------- resize ----
class RandomScaleRange(T.Augmentation):
    """Resize by a factor drawn uniformly from ``[min_scale, max_scale]`` (aspect ratio kept).

    ``max_size`` (pixels, 0 = none) caps the longer side after scaling, so a 3x scale of a large image stays
    affordable. Polygons follow exactly (``ResizeTransform.apply_coords`` scales x by ``new_w / w`` and y by
    ``new_h / h``, the same factors as the image).
    """

    def __init__(self, min_scale: float, max_scale: float, max_size: int = 0, interp=None):
        super().__init__()
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        s = float(np.random.uniform(self.min_scale, self.max_scale))
        if self.max_size > 0:
            s = min(s, self.max_size / max(h, w))
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        if (nh, nw) == (h, w):
            return NoOpTransform()
        return ResizeTransform(h, w, nh, nw, self.interp)


# ------------------------------------------------------------------------------------------------- crop ----
def _allowed_cuts(extents: np.ndarray, size: int) -> np.ndarray:
    """Integer cut positions in ``[0, size]`` that do not fall strictly inside any ``[lo, hi]`` extent.

    ``extents`` (M, 2) are the polygons' ranges along one axis (pixels). A cut at ``c`` separates columns ``c-1``
    and ``c``; it is allowed unless some text spans both.
    """
    blocked = np.zeros(size + 1, dtype=bool)
    for lo, hi in extents:
        a = max(int(np.floor(lo)) + 1, 1)
        b = min(int(np.ceil(hi)) - 1, size - 1)
        if a <= b:
            blocked[a:b + 1] = True
    return np.flatnonzero(~blocked)


class TextRandomCrop(T.Augmentation):
    """DB-style random crop that avoids cutting text, then a resize of the crop to fit ``crop_size``.

    Algorithm (our own statement of the DB recipe):

    1. Project every polygon (text and don't-care) on the x and y axes; a crop border may only lie where it cuts
       no projection (:func:`_allowed_cuts`; the image borders always qualify).
    2. Up to ``max_tries`` times: draw two allowed x cuts and two allowed y cuts; the crop must be at least
       ``min_crop_ratio`` of the image along each axis, and, when the image holds any non-don't-care text, it must
       contain at least one text polygon entirely. The first crop that passes is used.
    3. Fallback (all tries failed, e.g. text everywhere): a plain random crop of the same size distribution that
       contains one randomly chosen text polygon whole (when it fits) and cuts whatever else it crosses. The cut
       polygons are clipped later, by :func:`clip_polygons_to_image`, which marks heavily cut ones don't care.
    4. The crop is scaled by ``min(crop_h / h, crop_w / w)`` so it fits ``crop_size`` with its aspect ratio kept
       (up- or down-scaling). Nothing is padded: the model pads batches (``ImageList``) and pads the targets alike.

    ``get_transform`` returns ``TransformList([CropTransform, ResizeTransform])`` (``apply_coords`` is exact).
    """

    def __init__(self, crop_size: Tuple[int, int], min_crop_ratio: float = 0.1, max_tries: int = 50,
                 prob: float = 1.0, interp=None):
        super().__init__()
        crop_size = (int(crop_size[0]), int(crop_size[1]))
        if min(crop_size) <= 0:
            raise ValueError(f"crop_size must be positive (h, w), got {crop_size}")
        if not 0 < min_crop_ratio <= 1:
            raise ValueError(f"min_crop_ratio must lie in (0, 1], got {min_crop_ratio}")
        self._init(locals())

    # -- region choice -------------------------------------------------------------------------------------
    def choose_region(self, height: int, width: int, polygons: Sequence[np.ndarray], ignore) -> Tuple[int, ...]:
        """Pick ``(x0, y0, w, h)`` (integer pixels) in an image of ``height x width`` holding ``polygons``."""
        ignore = np.asarray(ignore, dtype=bool) if len(polygons) else np.zeros(0, dtype=bool)
        boxes = (np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polygons])
                 if len(polygons) else np.zeros((0, 4)))
        boxes = np.clip(boxes, 0, [width, height, width, height])
        text = boxes[~ignore]
        min_w = max(1, int(np.ceil(self.min_crop_ratio * width)))
        min_h = max(1, int(np.ceil(self.min_crop_ratio * height)))
        xs = _allowed_cuts(boxes[:, [0, 2]], width)
        ys = _allowed_cuts(boxes[:, [1, 3]], height)
        for _ in range(self.max_tries):
            x0, x1 = np.sort(np.random.choice(xs, 2))
            y0, y1 = np.sort(np.random.choice(ys, 2))
            if x1 - x0 < min_w or y1 - y0 < min_h:
                continue
            if len(text):
                inside = ((text[:, 0] >= x0) & (text[:, 2] <= x1) & (text[:, 1] >= y0) & (text[:, 3] <= y1))
                if not inside.any():
                    continue
            return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
        return self._fallback_region(height, width, text, min_w, min_h)

    def _fallback_region(self, height, width, text, min_w, min_h):
        w = int(np.random.randint(min_w, width + 1))
        h = int(np.random.randint(min_h, height + 1))
        lo_x, hi_x, lo_y, hi_y = 0, width - w, 0, height - h
        if len(text):
            b = text[np.random.randint(len(text))]
            x_lo, x_hi = int(np.ceil(b[2])) - w, int(np.floor(b[0]))  # x0 range that contains the box
            y_lo, y_hi = int(np.ceil(b[3])) - h, int(np.floor(b[1]))
            if max(x_lo, lo_x) <= min(x_hi, hi_x):
                lo_x, hi_x = max(x_lo, lo_x), min(x_hi, hi_x)
            if max(y_lo, lo_y) <= min(y_hi, hi_y):
                lo_y, hi_y = max(y_lo, lo_y), min(y_hi, hi_y)
        x0 = int(np.random.randint(lo_x, hi_x + 1))
        y0 = int(np.random.randint(lo_y, hi_y + 1))
        return x0, y0, w, h

    def get_transform(self, image, polygons, ignore):
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        H, W = image.shape[:2]
        x0, y0, w, h = self.choose_region(H, W, polygons, ignore)
        tfms: List[Transform] = []
        if (x0, y0, w, h) != (0, 0, W, H):
            tfms.append(CropTransform(x0, y0, w, h, orig_w=W, orig_h=H))
        s = min(self.crop_size[0] / h, self.crop_size[1] / w)
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        if (nh, nw) != (h, w):
            tfms.append(ResizeTransform(h, w, nh, nw, self.interp))
        return TransformList(tfms) if tfms else NoOpTransform()


# ---------------------------------------------------------------------------------------------- clipping --
def clip_polygons_to_image(polygons: Sequence[np.ndarray], ignore, height: int, width: int,
                           min_visible: float = 0.5, min_area: float = 1.0):
    """Clip polygons to the image ``[0, width] x [0, height]`` (pixels) after augmentation.

    Rules (per polygon, with ``a`` its area before clipping, pixels^2):

    * entirely inside: unchanged (vertex order kept);
    * invalid (self-intersecting) polygons are made valid with ``buffer(0)`` before clipping;
    * nothing (area < ``min_area``) left inside: dropped;
    * otherwise the clipped polygon replaces it; if the largest clipped part keeps less than ``min_visible`` of
      ``a``, it becomes **don't care** (half a word teaches neither "text" nor "background");
    * when clipping splits a polygon, the largest part is handled as above and every other part with area
      ``>= min_area`` is kept as a don't-care instance (same class).

    Returns ``(polygons, ignore, source)``: the new list of ``(N, 2)`` float64 arrays, their (K,) bool don't-care
    flags, and (K,) int indices of the input polygon each came from.
    """
    ignore = np.asarray(ignore, dtype=bool)
    frame = shapely_box(0.0, 0.0, float(width), float(height))
    out, out_ignore, source = [], [], []
    for i, p in enumerate(polygons):
        p = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        if len(p) >= 3 and p[:, 0].min() >= 0 and p[:, 1].min() >= 0 and p[:, 0].max() <= width \
                and p[:, 1].max() <= height:
            out.append(p)
            out_ignore.append(bool(ignore[i]))
            source.append(i)
            continue
        if len(p) < 3:
            continue
        poly = Polygon(p)
        if not poly.is_valid:
            poly = poly.buffer(0)
        area = poly.area
        parts = sorted(polygon_parts(shapely.intersection(poly, frame)), key=lambda g: -g.area)
        parts = [g for g in parts if g.area >= min_area]
        if not parts or area <= 0:
            continue
        for j, g in enumerate(parts):
            out.append(exterior(g))
            out_ignore.append(bool(ignore[i]) or j > 0 or g.area < min_visible * area)
            source.append(i)
    return out, np.array(out_ignore, dtype=bool), np.array(source, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- builder ---
def build_text_augmentations(cfg, is_train: bool) -> List[T.Augmentation]:
    """The augmentation list for text detection from ``cfg.INPUT`` (see ``INPUT.FASTTCM.TEXT_*`` keys).

    Training, in order: resize (``TEXT_RESIZE_MODE``: ``"shortest_edge"`` uses ``INPUT.MIN_SIZE_TRAIN`` /
    ``MAX_SIZE_TRAIN`` / ``MIN_SIZE_TRAIN_SAMPLING``; ``"scale_range"`` uses ``TEXT_SCALE_RANGE`` with the longer side
    capped at ``TEXT_SCALE_MAX_SIZE``; ``"none"`` keeps the size), horizontal flip
    (``TEXT_HFLIP_PROB``, 0 by default), rotation by a uniform angle in ``[-TEXT_ROTATE_ANGLE, TEXT_ROTATE_ANGLE]``
    degrees with probability ``TEXT_ROTATE_PROB`` (``TEXT_ROTATE_EXPAND``: the canvas grows to hold the whole
    rotated image, corners filled with black, so no text is lost; if False the canvas keeps its size and
    polygons leaving it are clipped), the text-preserving crop (``TEXT_CROP_SIZE``, 0 disables), and colour
    jitter last (cheapest on the smallest image). Test: ``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``.
    """
    f = cfg.INPUT.FASTTCM
    if not is_train:
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]
    augs: List[T.Augmentation] = []
    mode = f.TEXT_RESIZE_MODE
    if mode == "shortest_edge":
        augs.append(T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                         cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING))
    elif mode == "scale_range":
        lo, hi = f.TEXT_SCALE_RANGE
        augs.append(RandomScaleRange(lo, hi, max_size=f.TEXT_SCALE_MAX_SIZE))
    elif mode != "none":
        raise ValueError(f"INPUT.FASTTCM.TEXT_RESIZE_MODE must be 'shortest_edge', 'scale_range' or 'none', "
                         f"got {mode!r}")
    if f.TEXT_HFLIP_PROB > 0:
        augs.append(T.RandomFlip(prob=f.TEXT_HFLIP_PROB, horizontal=True, vertical=False))
    if f.TEXT_ROTATE_PROB > 0 and f.TEXT_ROTATE_ANGLE > 0:
        a = float(f.TEXT_ROTATE_ANGLE)
        augs.append(T.RandomApply(T.RandomRotation([-a, a], expand=f.TEXT_ROTATE_EXPAND, sample_style="range"),
                                  prob=f.TEXT_ROTATE_PROB))
    if f.TEXT_CROP_SIZE > 0:
        augs.append(TextRandomCrop((f.TEXT_CROP_SIZE, f.TEXT_CROP_SIZE), min_crop_ratio=f.TEXT_CROP_MIN_RATIO,
                                   max_tries=f.TEXT_CROP_MAX_TRIES))
    if f.TEXT_COLOR_JITTER_PROB > 0:
        b, c, s = f.TEXT_COLOR_JITTER
        augs.append(RandomColorJitter(b, c, s, prob=f.TEXT_COLOR_JITTER_PROB, image_format=cfg.INPUT.FORMAT))
    return augs
