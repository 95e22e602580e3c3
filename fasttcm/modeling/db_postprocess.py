"""DB post-processing: probability map -> text polygons with scores (numpy / cv2 / shapely).

Steps (:class:`DBPostProcessor`), on the probability map P of one image at the network input resolution:

1. binarize: ``P > binary_thresh`` (0.3);
2. connected regions: ``cv2.findContours`` (outer and inner boundaries, ``RETR_LIST``), largest first, at most
   ``max_candidates``;
3. each contour -> polygon: ``"poly"`` mode simplifies it with ``cv2.approxPolyDP`` (tolerance
   ``poly_epsilon`` x perimeter; a result with fewer than 4 vertices falls back to the minimum-area rectangle),
   ``"quad"`` mode takes the minimum-area rectangle;
4. score = mean of P over the pixels inside that polygon (bounding-box crop + exact scanline fill); candidates scoring
   below ``box_thresh`` are dropped. DB's papers use 0.6 (Total-Text, CTW) to 0.7 (ICDAR 2015): the default 0.6
   is configurable (``MODEL.FASTTCM.DB.BOX_THRESH``);
5. unclip: offset outwards by ``A x unclip_ratio / L`` (area, perimeter of the polygon; ratio 1.5) with shapely
   ``buffer`` (mitre joins, bevelled beyond a mitre ratio of 2), undoing the shrinking of the training targets;
6. size filter: candidates whose minimum-area rectangle has a shorter side below ``min_size`` pixels (before
   unclipping) or below ``min_size + 2`` (after) are dropped;
7. output: ``"poly"`` keeps the unclipped polygon, ``"quad"`` its minimum-area rectangle as 4 points clockwise in
   image coordinates (y down) from the top-left-most corner; coordinates are rescaled from the network input
   size to the original image size and clipped to it.

Coordinates: contours from cv2 pass through pixel indices; we add 0.5 to turn them into the continuous
coordinates used everywhere else (pixel ``(i, j)`` covers ``[i, i+1] x [j, j+1]``).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
from detectron2.config import configurable
from shapely.geometry import Polygon

from ..data.db_targets import polygon_mask

__all__ = ["DBPostProcessor", "PolygonList", "order_quad_clockwise", "polygons_to_boxes"]


class PolygonList(list):
    """A list of ``(N_i, 2)`` float32 polygons that ``Instances`` can index like a tensor field.

    Indexing with an int gives one polygon; a slice, a bool / int tensor or array, or a list of ints gives a
    ``PolygonList`` (so ``instances[instances.scores > 0.5]`` works).
    """

    def __getitem__(self, item):
        if isinstance(item, (int, np.integer)):
            return list.__getitem__(self, int(item))
        if isinstance(item, slice):
            return PolygonList(list.__getitem__(self, item))
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().numpy()
        idx = np.asarray(item)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean index of shape {idx.shape} for {len(self)} polygons")
            idx = np.flatnonzero(idx)
        return PolygonList(list.__getitem__(self, int(i)) for i in idx.reshape(-1))

    @staticmethod
    def cat(lists: Sequence["PolygonList"]) -> "PolygonList":
        return PolygonList(p for lst in lists for p in lst)


def order_quad_clockwise(points: np.ndarray) -> np.ndarray:
    """4 corners of a convex quadrilateral -> clockwise in image coordinates (y down), starting from the corner
    with the smallest ``x + y`` (ties: smallest x). Returns (4, 2) float32."""
    p = np.asarray(points, dtype=np.float64).reshape(4, 2)
    c = p.mean(axis=0)
    ang = np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0])  # with y down, increasing angle runs clockwise on screen
    p = p[np.argsort(ang)]
    key = np.round(p.sum(axis=1), 6) * 1e6 + p[:, 0]
    start = int(np.argmin(key))
    return np.roll(p, -start, axis=0).astype(np.float32)


def polygons_to_boxes(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 4) XYXY axis-aligned boxes enclosing each ``(n_i, 2)`` polygon (float32)."""
    if not len(polygons):
        return np.zeros((0, 4), dtype=np.float32)
    return np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polygons],
                    dtype=np.float32)


def _short_side(points: np.ndarray) -> float:
    (_, _), (w, h), _ = cv2.minAreaRect(np.asarray(points, dtype=np.float32).reshape(-1, 1, 2))
    return float(min(w, h))


def _mean_inside(prob: np.ndarray, points: np.ndarray) -> float:
    """Mean of ``prob`` over pixels whose centres lie inside ``points`` (bounding-box crop, exact raster)."""
    y0, x0, mask = polygon_mask(points, prob.shape[0], prob.shape[1])
    if not mask.any():
        return 0.0
    return float(prob[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][mask].mean())


def _unclip(points: np.ndarray, ratio: float) -> np.ndarray:
    """Offset outwards by ``area x ratio / perimeter``; returns the largest part's exterior ((n, 2), or empty)."""
    poly = Polygon(points)
    if not poly.is_valid:
        poly = poly.buffer(0)
    if poly.is_empty or poly.length <= 0:
        return np.zeros((0, 2))
    grown = poly.buffer(poly.area * ratio / poly.length, join_style="mitre", mitre_limit=2.0)
    if grown.is_empty:
        return np.zeros((0, 2))
    if not isinstance(grown, Polygon):
        grown = max(grown.geoms, key=lambda g: g.area)
    return np.asarray(grown.exterior.coords, dtype=np.float64)[:-1]


class DBPostProcessor:
    """Turn DB probability maps into polygons (see module docstring for the steps and their parameters).

    Call with ``prob`` (H, W) float array (or tensor) in [0, 1] at the network input resolution,
    ``image_size`` (h, w): the part of ``prob`` covered by the resized image (the rest is batch padding), and
    ``output_size`` (H0, W0): the original image size the polygons are rescaled to. Returns
    ``(polygons, scores)``: a :class:`PolygonList` of ``(n, 2)`` float32 arrays in original-image pixels and a
    (N,) float32 array, sorted by decreasing score.
    """

    @configurable
    def __init__(self, *, binary_thresh: float = 0.3, box_thresh: float = 0.6, unclip_ratio: float = 1.5,
                 max_candidates: int = 1000, min_size: float = 3.0, output_mode: str = "poly",
                 poly_epsilon: float = 0.005):
        if output_mode not in ("poly", "quad"):
            raise ValueError(f"DB output mode must be 'poly' or 'quad', got {output_mode!r}")
        self.binary_thresh = binary_thresh
        self.box_thresh = box_thresh
        self.unclip_ratio = unclip_ratio
        self.max_candidates = max_candidates
        self.min_size = min_size
        self.output_mode = output_mode
        self.poly_epsilon = poly_epsilon

    @classmethod
    def from_config(cls, cfg):
        db = cfg.MODEL.FASTTCM.DB
        return {"binary_thresh": db.BINARY_THRESH, "box_thresh": db.BOX_THRESH, "unclip_ratio": db.UNCLIP_RATIO,
                "max_candidates": db.MAX_CANDIDATES, "min_size": db.MIN_SIZE, "output_mode": db.OUTPUT_MODE,
                "poly_epsilon": db.POLY_EPSILON}

    def _candidate(self, contour: np.ndarray) -> np.ndarray:
        if self.output_mode == "quad":
            return cv2.boxPoints(cv2.minAreaRect(contour)).astype(np.float64)
        eps = self.poly_epsilon * cv2.arcLength(contour, True)
        approx = cv2.approxPolyDP(contour, eps, True).reshape(-1, 2).astype(np.float64)
        if len(approx) < 4:
            return cv2.boxPoints(cv2.minAreaRect(contour)).astype(np.float64)
        return approx

    def __call__(self, prob, image_size: Tuple[int, int], output_size: Tuple[int, int]):
        if isinstance(prob, torch.Tensor):
            prob = prob.detach().float().cpu().numpy()
        prob = np.asarray(prob, dtype=np.float32)
        if prob.ndim == 3:
            prob = prob[0]
        h, w = int(image_size[0]), int(image_size[1])
        prob = prob[:h, :w]
        sy, sx = output_size[0] / h, output_size[1] / w
        bitmap = (prob > self.binary_thresh).astype(np.uint8)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        contours = sorted(contours, key=cv2.contourArea, reverse=True)[: self.max_candidates]
        polys: List[np.ndarray] = []
        scores: List[float] = []
        for contour in contours:
            if len(contour) < 3:
                continue
            cand = self._candidate(contour) + 0.5
            if _short_side(cand) < self.min_size:
                continue
            score = _mean_inside(prob, cand)
            if score < self.box_thresh:
                continue
            grown = _unclip(cand, self.unclip_ratio)
            if len(grown) < 3 or _short_side(grown) < self.min_size + 2:
                continue
            if self.output_mode == "quad":
                grown = order_quad_clockwise(cv2.boxPoints(cv2.minAreaRect(grown.astype(np.float32))))
            out = grown.astype(np.float64) * [sx, sy]
            out[:, 0] = np.clip(out[:, 0], 0, output_size[1])
            out[:, 1] = np.clip(out[:, 1], 0, output_size[0])
            polys.append(out.astype(np.float32))
            scores.append(score)
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        return PolygonList(polys[i] for i in order), np.asarray(scores, dtype=np.float32)[order]
