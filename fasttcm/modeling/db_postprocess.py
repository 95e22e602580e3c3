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

from typing import List, Tuple

import cv2
import numpy as np
import torch
from detectron2.config import configurable

from ..structures.polygons import PolygonList, order_quad_clockwise, unclip
from ..structures.raster import min_rect_short_side, polygon_mask

__all__ = ["DBPostProcessor"]


def _mean_inside(prob: np.ndarray, points: np.ndarray) -> float:
    """Mean of ``prob`` over pixels whose centres lie inside ``points`` (bounding-box crop, exact raster)."""
    y0, x0, mask = polygon_mask(points, prob.shape[0], prob.shape[1])
    if not mask.any():
        return 0.0
    return float(prob[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][mask].mean())


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
            if min_rect_short_side(cand) < self.min_size:
                continue
            score = _mean_inside(prob, cand)
            if score < self.box_thresh:
                continue
            grown = unclip(cand, self.unclip_ratio)
            if len(grown) < 3 or min_rect_short_side(grown) < self.min_size + 2:
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
