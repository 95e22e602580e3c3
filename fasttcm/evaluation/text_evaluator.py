"""``TextDetEvaluator``: Detectron2 ``DatasetEvaluator`` for scene-text detection and spotting (ICDAR 2015,
Total-Text, CTW1500), computing the official RRC numbers through :mod:`fasttcm.evaluation.text_eval`.

What it does
------------
1. ``process`` keeps, per image, the predictions with ``score >= score_threshold`` (a fixed threshold; the
   trainer passes ``cfg.TEST.FASTTCM.SCORE_THRESHOLD``, default 0.5, which is also this class's default).
   Predictions are read from ``outputs[i]["instances"]``: ``pred_polygons`` (a list of (n_i, 2) or flat arrays,
   numpy or tensors), else ``pred_boxes`` (``RotatedBoxes`` -> their 4 corners; axis-aligned ``Boxes`` -> 4
   corners), ``scores``, and optionally ``texts`` (list of str). The image is ``inputs[i]["image_id"]`` (else the
   stem of ``file_name``), normalised by :func:`~fasttcm.evaluation.text_eval.image_key`.
2. ``evaluate`` gathers the predictions of all ranks (``detectron2.utils.comm``); only the main process goes on.
   It turns each prediction into what the official format can hold:

   * ICDAR 2015: a quadrilateral (the polygon itself if it has 4 points, else its minimum-area rotated
     rectangle; an invalid 4-point polygon is also replaced by that rectangle), integer coordinates, clockwise.
   * Total-Text / CTW1500: the polygon (2 decimals, clockwise); an invalid (self-intersecting) one is replaced by
     the largest polygon of ``shapely.make_valid``, so the files are accepted by the official script too.
   * A prediction with fewer than 3 points or non-finite coordinates cannot be written: it is dropped.

   Repairs and drops are counted and logged (never silent). It writes the official submission files under
   ``output_dir`` (``OUTPUT_DIR/inference/<dataset>/`` from the trainer): ``text_results/res_img_<id>.txt``
   plus ``text_results.zip`` (flat) for ICDAR 2015, ``text_results/<7-digit id>.txt`` for Total-Text/CTW1500,
   one file per processed image (empty when it has no detection), and ``text_eval.json`` (the full result,
   with per-image numbers). The numbers are computed on exactly the lines written to those files.
3. Ground truth: when the dataset's metadata has ``gt_zip``, or ``gt_dir`` holding files in the evaluation layout
   (``gt_format`` ``"icdar15"`` for ICDAR 2015, ``"polygon_txt"`` for the polygon protocols, or, without
   ``gt_format``, an ICDAR 2015 folder with ``gt_img_*.txt`` files), the official files are read and the image
   set is theirs. Otherwise the records of ``DatasetCatalog.get(dataset_name)`` are used: ``segmentation``
   polygons (one per annotation; with several, the largest, counted), ``text``, and ``iscrowd=1`` = don't care
   (its transcription becomes ``###``). GT images that received no model output count as images without
   detections (a warning says how many); outputs for images without GT are ignored and reported.
4. It logs a table (protocol named, P/R/H for detection only and end to end, counts) and returns, in percent as
   Detectron2's evaluators do::

       {"text_det": {"precision", "recall", "hmean"},
        "text_e2e": {"precision", "recall", "hmean"}}       # only when the outputs carry ``texts``

   With ``lexicons`` (``{name: lexicon}`` from :func:`fasttcm.evaluation.lexicon.load_lexicons`; the trainer
   loads them from ``TEST.FASTTCM.LEXICON_*``) and outputs with ``texts``, it also logs the whole spotting row
   (:func:`~fasttcm.evaluation.lexicon.evaluate_spotting`: end to end and word spotting, no lexicon and each
   lexicon, with rule, files and threshold named), returns ``"text_e2e_<lexicon>"`` for each (in the evaluator's
   word-spotting mode, like ``text_e2e``), and writes ``text_results_<lexicon>/`` (+ ``.zip`` for ICDAR 2015), the
   submission after matching, beside ``text_results``.

   With ``threshold_sweep`` (off by default) it also evaluates a grid of score thresholds and adds
   ``"text_det_threshold_sweep": {"threshold", "precision", "recall", "hmean"}`` for the best detection hmean.
   That number picks its threshold on the test set: it is labelled as such and is never the main number.

Word spotting: ``word_spotting`` if given, else the metadata's ``word_spotting``, else True for Total-Text and
False otherwise. Protocol: ``protocol`` if given, else the metadata's ``evaluator_type``.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import shapely
from shapely.geometry import Polygon

from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..structures.polygons import as_points, polygonal_union, signed_area, to_numpy
from ..structures.quads import rboxes_to_quads
from . import lexicon as lx
from . import text_eval as te

__all__ = ["TextDetEvaluator", "DEFAULT_SWEEP"]

logger = logging.getLogger(__name__)

#: score thresholds of ``threshold_sweep=True``
DEFAULT_SWEEP = tuple(round(0.05 * i, 2) for i in range(1, 20))
_FILE_GT_FORMATS = {"icdar15": ("icdar15", "icdar2015", "ic15"), "polygon": ("polygon_txt",)}


class TextDetEvaluator(DatasetEvaluator):
    """Official-protocol text detection / end-to-end evaluation of a registered dataset (see module docstring).

    Args:
        dataset_name: a name registered in ``DatasetCatalog``/``MetadataCatalog``.
        output_dir: where submission files and ``text_eval.json`` go (nothing is written when None).
        protocol: ``"icdar15"``, ``"totaltext"`` or ``"ctw1500"``; default the metadata's ``evaluator_type``.
        score_threshold: keep predictions with ``score >= score_threshold`` (fixed; default 0.5, the default of
            ``cfg.TEST.FASTTCM.SCORE_THRESHOLD``).
        word_spotting: dictionary rule for end to end; default from metadata, else True for Total-Text only.
        distributed: gather predictions from all ranks; only the main process evaluates.
        threshold_sweep: False (default); True for :data:`DEFAULT_SWEEP`; or a sequence of thresholds. Adds the
            explicitly labelled ``"text_det_threshold_sweep"`` result (best detection hmean over thresholds).
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        protocol: Optional[str] = None,
        score_threshold: float = 0.5,
        word_spotting: Optional[bool] = None,
        distributed: bool = True,
        threshold_sweep: Union[bool, Sequence[float]] = False,
        lexicons: Optional[Mapping] = None,
        lexicon_rule: str = lx.DEFAULT_RULE,
        lexicon_max_distance: Union[float, None, str] = "default",
        lexicon_on_missing: str = "error",
    ):
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._meta = MetadataCatalog.get(dataset_name)
        if protocol is None:
            protocol = getattr(self._meta, "evaluator_type", None)
            if protocol is None:
                raise ValueError(
                    f"dataset {dataset_name!r} has no evaluator_type in its metadata; pass protocol= "
                    f"(one of {te.PROTOCOLS})"
                )
        self._protocol = te.canonical_protocol(protocol)
        self._rules = "icdar15" if self._protocol == "icdar15" else "polygon"
        if word_spotting is None:
            word_spotting = getattr(self._meta, "word_spotting", None)
        if word_spotting is None:
            word_spotting = self._protocol == "totaltext"
        self._word_spotting = bool(word_spotting)
        self._score_threshold = float(score_threshold)
        if threshold_sweep is True:
            sweep: Sequence[float] = DEFAULT_SWEEP
        elif threshold_sweep is False or threshold_sweep is None:
            sweep = ()
        else:
            sweep = tuple(float(t) for t in threshold_sweep)
        self._sweep = tuple(sorted(set(sweep)))
        self._keep_threshold = min((self._score_threshold,) + self._sweep)
        self._lexicons = dict(lexicons or {})
        self._lexicon_rule = lexicon_rule
        self._lexicon_max_distance = lexicon_max_distance
        self._lexicon_on_missing = lexicon_on_missing
        self.reset()

    # ----------------------------------------------------------------------------------------- process --
    def reset(self):
        self._predictions: List[dict] = []

    def _image_key(self, inp: dict) -> str:
        image_id = inp.get("image_id")
        if image_id is None:
            if "file_name" not in inp:
                raise ValueError("TextDetEvaluator needs inputs with 'image_id' or 'file_name'")
            image_id = os.path.splitext(os.path.basename(inp["file_name"]))[0]
        return te.image_key(image_id, self._protocol)

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            inst = out["instances"]
            if hasattr(inst, "to"):
                inst = inst.to("cpu")
            scores = to_numpy(inst.scores, np.float64).reshape(-1)
            if inst.has("pred_polygons"):
                polys = [as_points(p) for p in inst.pred_polygons]
            elif inst.has("pred_boxes"):
                b = to_numpy(inst.pred_boxes, np.float64)
                if b.ndim == 2 and b.shape[1] == 5:
                    polys = list(rboxes_to_quads(b))
                elif b.ndim == 2 and b.shape[1] == 4:
                    x0, y0, x1, y1 = b.T
                    polys = list(np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1),
                                           np.stack([x1, y1], 1), np.stack([x0, y1], 1)], 1))
                else:
                    raise ValueError(f"pred_boxes of shape {b.shape}: expected (N, 5) rotated or (N, 4) boxes")
            else:
                raise ValueError("TextDetEvaluator needs 'pred_polygons' or 'pred_boxes' in the output instances")
            if len(polys) != len(scores):
                raise ValueError(f"{len(polys)} polygons but {len(scores)} scores")
            texts = [str(t) for t in inst.texts] if inst.has("texts") else None
            keep = np.flatnonzero(scores >= self._keep_threshold)
            self._predictions.append(
                {
                    "key": self._image_key(inp),
                    "polygons": [polys[i] for i in keep],
                    "scores": scores[keep],
                    "texts": None if texts is None else [texts[i] for i in keep],
                }
            )

    # ---------------------------------------------------------------------------------------- evaluate --
    def _prepare(self, points: np.ndarray, counts: Dict[str, int]) -> Optional[np.ndarray]:
        """A prediction's polygon as the official format can hold it, or None (dropped)."""
        if len(points) < 3 or not np.isfinite(points).all():
            counts["dropped"] += 1
            return None
        if self._rules == "icdar15":
            if len(points) == 4 and not Polygon(points).is_valid:
                counts["repaired"] += 1
                return te.to_quad(points, rectangle=True)
            return te.to_quad(points)
        poly = Polygon(points)
        if poly.is_valid:
            return points
        parts = polygonal_union(shapely.make_valid(poly))
        if parts is None:
            counts["dropped"] += 1
            return None
        counts["repaired"] += 1
        largest = max(getattr(parts, "geoms", [parts]), key=lambda g: g.area)
        return np.asarray(largest.exterior.coords, dtype=np.float64)[:-1]

    def _load_gt(self):
        """(ground truth for text_eval.evaluate, description)."""
        meta = self._meta
        gt_zip = getattr(meta, "gt_zip", None)
        if gt_zip:
            return te.load_text_files(gt_zip, self._protocol, "gt"), f"official files {gt_zip}"
        gt_dir = getattr(meta, "gt_dir", None)
        fmt = getattr(meta, "gt_format", None)
        if gt_dir and os.path.isdir(gt_dir):
            ok = fmt in _FILE_GT_FORMATS[self._rules] if fmt is not None else (
                self._rules == "icdar15"
                and any(fn.startswith("gt_img_") and fn.lower().endswith(".txt") for fn in os.listdir(gt_dir))
            )
            if ok:
                return te.load_text_files(gt_dir, self._protocol, "gt"), f"official files {gt_dir}"
        gt: Dict[str, List[te.TextItem]] = {}
        several = 0
        for rec in DatasetCatalog.get(self._dataset_name):
            image_id = rec.get("image_id")
            if image_id is None:
                image_id = os.path.splitext(os.path.basename(rec["file_name"]))[0]
            key = te.image_key(image_id, self._protocol)
            if key in gt:
                raise ValueError(f"dataset {self._dataset_name!r}: two records are image {key!r}")
            words = []
            for a in rec.get("annotations", []):
                seg = a.get("segmentation")
                if not isinstance(seg, list) or not seg:
                    raise ValueError(
                        f"dataset {self._dataset_name!r}, image {image_id!r}: an annotation without a polygon "
                        "'segmentation' (text evaluation needs polygons)"
                    )
                polys = [as_points(p) for p in seg]
                if len(polys) > 1:
                    several += 1
                    polys.sort(key=lambda p: -abs(signed_area(p)) if len(p) >= 3 else 0.0)
                text = te.DONT_CARE if a.get("iscrowd", 0) else str(a.get("text", ""))
                words.append(te.TextItem(polys[0], text))
            gt[key] = words
        if several:
            logger.warning(f"{self._dataset_name}: {several} annotation(s) with several polygons: the largest is used")
        desc = f"dataset dicts of {self._dataset_name}"
        sources = {k: f"{self._dataset_name} image {k!r}" for k in gt}
        return te.TextFiles(gt, sources, [], f"{desc} ({len(gt)} images)"), desc

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            gathered = comm.gather(self._predictions, dst=0)
            predictions = list(itertools.chain(*gathered))
            if not comm.is_main_process():
                return {}
        else:
            predictions = self._predictions
        if not predictions:
            logger.warning(f"[TextDetEvaluator] {self._dataset_name}: no predictions received; nothing to evaluate")
            return {}
        has_texts = any(p["texts"] is not None for p in predictions)

        # prediction -> official lines -> parsed words (scores kept alongside)
        counts = {"repaired": 0, "dropped": 0}
        lines: Dict[str, List[str]] = {}
        words: Dict[str, List[te.TextItem]] = {}
        scores: Dict[str, np.ndarray] = {}
        duplicates = 0
        for p in predictions:
            key = p["key"]
            if key in lines:
                duplicates += 1
                continue
            kept, kept_scores = [], []
            for i, pts in enumerate(p["polygons"]):
                q = self._prepare(pts, counts)
                if q is None:
                    continue
                kept.append((q, p["texts"][i] if p["texts"] is not None else None))
                kept_scores.append(p["scores"][i])
            lines[key] = te.format_submission_lines(kept, self._protocol)
            where = f"{self._dataset_name}:{te.submission_filename(key, self._protocol)}"
            words[key] = te.parse_lines(lines[key], self._protocol, where, "det")
            for w in words[key]:
                w.line = 0  # messages then name the word's index (the files are written later, if at all)
            scores[key] = np.asarray(kept_scores, dtype=np.float64)
        if duplicates:
            logger.warning(f"{self._dataset_name}: {duplicates} image(s) processed more than once: first output used")
        if counts["repaired"] or counts["dropped"]:
            logger.warning(
                f"{self._dataset_name}: {counts['repaired']} invalid predicted polygon(s) repaired, "
                f"{counts['dropped']} dropped (fewer than 3 points, non-finite, or no area left)"
            )

        gt, gt_source = self._load_gt()
        unprocessed = set(gt.items) - set(words)
        if unprocessed:
            logger.warning(
                f"{self._dataset_name}: {len(unprocessed)} ground-truth image(s) received no model output; "
                "they count as images without detections"
            )

        det_sources = {k: f"{self._dataset_name}:{te.submission_filename(k, self._protocol)}" for k in words}

        def select(threshold):  # keys are already normalised: hand text_eval a TextFiles, not a mapping
            items = {k: [w for w, s in zip(words[k], scores[k]) if s >= threshold] for k in words}
            return te.TextFiles(items, det_sources, [], f"model outputs ({len(items)} images)")

        result = te.evaluate(gt, select(self._score_threshold), self._protocol, self._word_spotting)
        result["score_threshold"] = self._score_threshold
        result["gt_source"] = gt_source
        result["predictions_repaired"], result["predictions_dropped"] = counts["repaired"], counts["dropped"]
        result["gt_images_without_output"] = len(unprocessed)

        spotting = None
        if has_texts and self._lexicons:
            spotting = lx.evaluate_spotting(
                gt, select(self._score_threshold), self._protocol, self._lexicons, rule=self._lexicon_rule,
                max_distance=self._lexicon_max_distance, on_missing=self._lexicon_on_missing,
                return_detections=True)
            result["lexicons"] = {k: v for k, v in spotting.items() if k != "detections"}
        if self._output_dir:
            self._write(lines, scores, result, spotting)
        logger.info(
            f"Text evaluation of {self._dataset_name} at score >= {self._score_threshold:g} "
            f"(ground truth: {gt_source}):\n" + te.format_table(result)
        )
        if spotting is not None:
            logger.info(f"End to end with lexicons, {self._dataset_name}:\n"
                        + lx.format_spotting_table(spotting, self._word_spotting))
        ret = OrderedDict()
        ret["text_det"] = {k: 100.0 * result["det_only"][k] for k in ("precision", "recall", "hmean")}
        if has_texts:
            ret["text_e2e"] = {k: 100.0 * result["e2e"][k] for k in ("precision", "recall", "hmean")}
        if spotting is not None:  # the column this evaluator reports end to end in (word spotting or not)
            column = "word_spotting" if self._word_spotting else "e2e"
            for name, row in spotting["rows"].items():
                if name != "none":
                    ret[f"text_e2e_{name}"] = {k: 100.0 * row[column][k] for k in ("precision", "recall", "hmean")}
        if self._sweep:
            best = None
            quiet, te.logger.disabled = te.logger.disabled, True  # its warnings were logged once above
            try:
                for t in self._sweep:
                    r = te.evaluate(gt, select(t), self._protocol, self._word_spotting)["det_only"]
                    if best is None or r["hmean"] > best[1]["hmean"]:
                        best = (t, r)
            finally:
                te.logger.disabled = quiet
            t, r = best
            ret["text_det_threshold_sweep"] = {
                "threshold": t,
                **{k: 100.0 * r[k] for k in ("precision", "recall", "hmean")},
            }
            logger.info(
                f"Score-threshold sweep over {list(self._sweep)} (OPTIMISTIC: the threshold is chosen on this test "
                f"set; not the reported number): best detection hmean {100 * r['hmean']:.2f} at score >= {t:g} "
                f"(P {100 * r['precision']:.2f}, R {100 * r['recall']:.2f})"
            )
        return ret

    def _write(self, lines: Dict[str, List[str]], scores, result: dict, spotting: Optional[dict] = None) -> None:
        os.makedirs(self._output_dir, exist_ok=True)
        folder = os.path.join(self._output_dir, "text_results")
        zip_path = os.path.join(self._output_dir, "text_results.zip") if self._rules == "icdar15" else None
        at_threshold = {
            k: [ln for ln, s in zip(v, scores[k]) if s >= self._score_threshold] for k, v in lines.items()
        }
        te.write_submission_lines(at_threshold, folder, self._protocol, zip_path)
        for name, dets in (spotting or {}).get("detections", {}).items():  # one submission per lexicon
            sub = os.path.join(self._output_dir, f"text_results_{name}")
            sub_zip = sub + ".zip" if self._rules == "icdar15" else None
            te.write_submission(dets, sub, self._protocol, sub_zip)
            logger.info(f"Text submission with the {name} lexicon written to {sub}"
                        + (f" and {sub_zip}" if sub_zip else ""))
        with open(os.path.join(self._output_dir, "text_eval.json"), "w", encoding="utf-8") as f:
            json.dump({"dataset": self._dataset_name, **result}, f, indent=1, ensure_ascii=False,
                      default=te.json_default)
        logger.info(f"Text submission written to {folder}" + (f" and {zip_path}" if zip_path else ""))
