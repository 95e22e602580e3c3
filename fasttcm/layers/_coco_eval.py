"""Detectron2's fast COCO evaluation entry points (``detectron2._C.COCOeval*``) in numpy, same numbers as pycocotools.

Detectron2's ``COCOEvaluator`` defaults to ``use_fast_impl=True``, which runs
``detectron2.evaluation.fast_eval_api.COCOeval_opt``: pycocotools' ``COCOeval`` whose per-image matching and
accumulation call compiled functions of ``detectron2._C``. This module provides them, so the default works when
detectron2 was installed without compiled ops:

* :class:`InstanceAnnotation` ``(id, score, area, is_crowd, ignore)`` -- one ground truth or detection.
* :func:`COCOevalEvaluateImages` ``(area_ranges, max_detections, iou_thresholds, ious, ground_truths,
  detections)`` -> a flat list of :class:`ImageEvaluation` (or ``None`` for an image and category with neither
  ground truth nor detections), index ``(category * A + area_range) * I + image`` (A area ranges, I images).
  ``ious[i][c]`` is ``COCOeval.ious[image, category]``: a (D, G) array, rows ordered by decreasing detection score
  (as pycocotools computes it), or an empty list.
* :func:`COCOevalAccumulate` ``(params, evaluations)`` -> ``{"params", "counts", "date", "precision", "recall",
  "scores"}``: ``counts`` is the list ``[T, R, K, A, M]`` (IoU thresholds, recall thresholds, categories, area
  ranges, max detections); ``precision`` and ``scores`` are float64 arrays of that shape, ``recall`` drops R.

Semantics are pycocotools 2.0's ``COCOeval.evaluateImg`` / ``accumulate``, including its details: ground truths
sorted with ignored ones last (stable), detections by decreasing score (stable) and cut at ``max_detections``; a
detection matches the eligible ground truth of highest IoU >= ``min(threshold, 1 - 1e-10)`` (the last one of equal
IoUs), non-ignored ground truths before ignored ones; a crowd ground truth may match any number of detections; a
match is recorded by id, so a ground truth with id 0 counts as unmatched in the accumulation (as in pycocotools);
unmatched detections outside the area range are ignored; precision is made monotone and sampled at the recall
thresholds with ``searchsorted(side="left")``; absent entries are -1. Tests compare every array element with
pycocotools' ``COCOeval``.

This file is loaded by path from :mod:`fasttcm.layers._C` and imports only the standard library and numpy.
"""
import datetime

import numpy as np

__all__ = ["InstanceAnnotation", "ImageEvaluation", "COCOevalEvaluateImages", "COCOevalAccumulate"]


class InstanceAnnotation:
    """One ground-truth or detected instance of one image and category, as detectron2's ``_C.InstanceAnnotation``.

    Args: ``id`` (int, the annotation or result id), ``score`` (float; 0 for ground truths), ``area`` (float, in
    pixels), ``is_crowd`` (bool), ``ignore`` (bool: pycocotools sets it from ``iscrowd``).
    """

    __slots__ = ("id", "score", "area", "is_crowd", "ignore")

    def __init__(self, id, score, area, is_crowd, ignore):
        self.id = int(id)
        self.score = float(score)
        self.area = float(area)
        self.is_crowd = bool(is_crowd)
        self.ignore = bool(ignore)

    def __repr__(self):
        return (
            f"InstanceAnnotation(id={self.id}, score={self.score}, area={self.area}, is_crowd={self.is_crowd}, "
            f"ignore={self.ignore})"
        )


class ImageEvaluation:
    """Matching result of one image, category and area range (opaque to detectron2, read by the accumulation).

    ``detection_scores`` (D,) float64 by decreasing score; ``detection_matched`` / ``detection_ignored`` (T, D) bool
    per IoU threshold; ``ground_truth_ignored`` (G,) bool.
    """

    __slots__ = ("detection_scores", "detection_matched", "detection_ignored", "ground_truth_ignored")

    def __init__(self, detection_scores, detection_matched, detection_ignored, ground_truth_ignored):
        self.detection_scores = detection_scores
        self.detection_matched = detection_matched
        self.detection_ignored = detection_ignored
        self.ground_truth_ignored = ground_truth_ignored


def _fields(instances):
    ids = np.array([o.id for o in instances], dtype=np.int64)
    score = np.array([o.score for o in instances], dtype=np.float64)
    area = np.array([o.area for o in instances], dtype=np.float64)
    crowd = np.array([o.is_crowd for o in instances], dtype=bool)
    ignore = np.array([o.ignore for o in instances], dtype=bool)
    return ids, score, area, crowd, ignore


def _evaluate_one(area_range, max_det, thresholds, ious, gts, dts):
    """pycocotools' ``evaluateImg`` for one image, category and area range."""
    if not gts and not dts:
        return None
    lo, hi = float(area_range[0]), float(area_range[1])
    t = thresholds.shape[0]
    g_ids, _, g_area, g_crowd, g_ignore = _fields(gts)
    g_ig = g_ignore | (g_area < lo) | (g_area > hi)
    gorder = np.argsort(g_ig, kind="mergesort")
    g_ids, g_crowd, g_ig = g_ids[gorder], g_crowd[gorder], g_ig[gorder]
    _, d_score, d_area, _, _ = _fields(dts)
    dorder = np.argsort(-d_score, kind="mergesort")[:max_det]
    d_score, d_area = d_score[dorder], d_area[dorder]
    n_g, n_d = g_ids.shape[0], d_score.shape[0]
    matched_gt_id = np.zeros((t, n_d), dtype=np.int64)  # id of the matched ground truth, 0 = none
    d_ig = np.zeros((t, n_d), dtype=bool)
    if len(ious) > 0 and n_g and n_d:
        iou = np.asarray(ious, dtype=np.float64)
        if iou.ndim != 2 or iou.shape[1] != n_g or iou.shape[0] < n_d:
            raise ValueError(
                f"COCOevalEvaluateImages: IoU matrix of shape {iou.shape} does not fit {n_d} detections x {n_g} "
                "ground truths"
            )
        iou = iou[:n_d][:, gorder]
        thr = np.minimum(thresholds, 1 - 1e-10)[:, None]  # (T, 1)
        taken = np.zeros((t, n_g), dtype=bool)  # pycocotools: gtm > 0 (detection ids from loadRes are >= 1)
        free_or_crowd = np.empty((t, n_g), dtype=bool)
        regular, ignored = ~g_ig, g_ig
        rev = slice(None, None, -1)
        for d in range(n_d):
            row = iou[d]
            np.logical_or(~taken, g_crowd, out=free_or_crowd)
            ok = free_or_crowd & (row >= thr)
            first = ok & regular
            has_first = first.any(axis=1)
            cand = np.where(has_first[:, None], first, ok & ignored)
            has = cand.any(axis=1)
            if not has.any():
                continue
            vals = np.where(cand, row, -np.inf)
            best = n_g - 1 - np.argmax(vals[:, rev], axis=1)  # the last of equal IoUs, as pycocotools' loop
            ts = np.flatnonzero(has)
            bs = best[ts]
            d_ig[ts, d] = g_ig[bs]
            matched_gt_id[ts, d] = g_ids[bs]
            taken[ts, bs] = True
    matched = matched_gt_id != 0
    outside = (d_area < lo) | (d_area > hi)
    d_ig |= ~matched & outside[None, :]
    return ImageEvaluation(d_score, matched, d_ig, g_ig)


def COCOevalEvaluateImages(area_ranges, max_detections, iou_thresholds, ious, ground_truths, detections):
    """Per-image matching of ``COCOeval.evaluate`` (see the module docstring for the arguments and the order)."""
    thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    max_det = int(max_detections)
    n_img = len(ground_truths)
    if len(detections) != n_img or len(ious) != n_img:
        raise ValueError(
            f"COCOevalEvaluateImages: {n_img} images of ground truths, {len(detections)} of detections, "
            f"{len(ious)} of IoUs; expected the same number"
        )
    n_cat = len(ious[0]) if n_img else 0
    n_area = len(area_ranges)
    out = [None] * (n_img * n_area * n_cat)
    for i in range(n_img):
        if len(ground_truths[i]) != n_cat or len(detections[i]) != n_cat or len(ious[i]) != n_cat:
            raise ValueError(f"COCOevalEvaluateImages: image {i + 1} does not list {n_cat} categories")
        for c in range(n_cat):
            gts, dts, iou = ground_truths[i][c], detections[i][c], ious[i][c]
            for a in range(n_area):
                out[(c * n_area + a) * n_img + i] = _evaluate_one(area_ranges[a], max_det, thresholds, iou, gts, dts)
    return out


def COCOevalAccumulate(params, evaluations):
    """``COCOeval.accumulate`` over :func:`COCOevalEvaluateImages`' output, for the same ``params``."""
    iou_thrs = np.asarray(params.iouThrs, dtype=np.float64).reshape(-1)
    rec_thrs = np.asarray(params.recThrs, dtype=np.float64).reshape(-1)
    cat_ids = list(params.catIds) if params.useCats else [-1]
    max_dets = list(params.maxDets)
    n_t, n_r, n_k, n_a, n_m = len(iou_thrs), len(rec_thrs), len(cat_ids), len(params.areaRng), len(max_dets)
    n_i = len(params.imgIds)
    if len(evaluations) != n_k * n_a * n_i:
        raise ValueError(
            f"COCOevalAccumulate: {len(evaluations)} image evaluations, expected {n_k} categories x {n_a} area "
            f"ranges x {n_i} images = {n_k * n_a * n_i}; call it with the params COCOevalEvaluateImages used"
        )
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    scores = -np.ones((n_t, n_r, n_k, n_a, n_m))
    for k in range(n_k):
        for a in range(n_a):
            base = (k * n_a + a) * n_i
            evs = [e for e in evaluations[base : base + n_i] if e is not None]
            if not evs:
                continue
            gt_ig = np.concatenate([e.ground_truth_ignored for e in evs])
            npig = int(np.count_nonzero(~gt_ig))
            if npig == 0:
                continue
            for m, max_det in enumerate(max_dets):
                sc = np.concatenate([e.detection_scores[:max_det] for e in evs])
                order = np.argsort(-sc, kind="mergesort")
                sc = sc[order]
                dtm = np.concatenate([e.detection_matched[:, :max_det] for e in evs], axis=1)[:, order]
                dti = np.concatenate([e.detection_ignored[:, :max_det] for e in evs], axis=1)[:, order]
                tp = np.cumsum(dtm & ~dti, axis=1).astype(float)
                fp = np.cumsum(~dtm & ~dti, axis=1).astype(float)
                nd = tp.shape[1]
                rc = tp / npig
                pr = tp / (fp + tp + np.spacing(1))
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision made non-increasing
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                for t in range(n_t):
                    idx = np.searchsorted(rc[t], rec_thrs, side="left")
                    # pycocotools fills recall thresholds in order and stops at the first one never reached
                    beyond = np.flatnonzero(idx >= nd)
                    stop = int(beyond[0]) if beyond.size else n_r
                    q = np.zeros(n_r)
                    ss = np.zeros(n_r)
                    q[:stop] = pr[t, idx[:stop]]
                    ss[:stop] = sc[idx[:stop]]
                    precision[t, :, k, a, m] = q
                    scores[t, :, k, a, m] = ss
    return {
        "params": params,
        "counts": [n_t, n_r, n_k, n_a, n_m],
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "precision": precision,
        "recall": recall,
        "scores": scores,
    }
