"""``DOTAEvaluator``: Detectron2 evaluator for DOTA-style oriented object detection (DOTA-v1.0 Task1 protocol).

It collects ``outputs[i]["instances"]`` (``pred_boxes`` as ``RotatedBoxes`` ``(cx, cy, w, h, a)`` in pixels of the
input image, ``scores``, ``pred_classes``), turns each box into its 4 corners
(:func:`fasttcm.structures.quads.rboxes_to_quads`), gathers them from all ranks
(``detectron2.utils.comm.gather``) and, on the main process:

1. if the dataset is a split set (metadata ``is_split``), merges the patch detections onto the original images
   (offsets and rate parsed from the patch name ``image_id``, class-wise polygon NMS at ``nms_thr``, 0.1;
   :func:`fasttcm.structures.patches.merge_detections`);
2. writes ``Task1_<class>.txt`` for every class under ``output_dir`` when given (usually
   ``OUTPUT_DIR/inference/<dataset>``): lines ``<image> <score> x1 y1 ... x4 y4``, score with 6 decimals,
   coordinates with 2; per class sorted by image name, then score (ready to zip for the DOTA server);
3. evaluates exactly these written values (the in-memory text is parsed back, so re-running
   ``tools/evaluate_dota.py`` on the files gives the same numbers) against the metadata's ground
   truth: ``gt_dir`` (labelTxt of the original images; a list is searched in order) and ``imageset``
   (image-set file(s) naming the original images; ``None`` or a missing file = every label file of ``gt_dir``);
4. logs the per-class table (the protocol is stated in it) and returns
   ``{"dota_task1": {"mAP": x, "AP-<class>": y, ...}}`` with APs **in percent** (0-100), as Detectron2's
   evaluators report. Datasets without ground truth (``gt_dir`` ``None``, the test sets) only get the files;
   ``evaluate`` then returns ``{}``.

The mAP is over the dataset's ``thing_classes`` (15 for DOTA-v1.0, 16 for v1.5, 4 for the synthetic aerial set).
Images are named by the input's ``image_id`` (the dataset loaders set it to the file stem), else the file stem.
"""
from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from typing import List, Optional, Sequence, Union

import numpy as np
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from fasttcm.structures.quads import rboxes_to_quads
from fasttcm.formats.dota import (
    Task1Detections,
    format_task1_text,
    parse_task1_text,
    read_imageset,
)
from fasttcm.structures.patches import merge_detections

from .dota_eval import PROTOCOL, evaluate_task1, format_table, load_ground_truth

logger = logging.getLogger(__name__)

__all__ = ["DOTAEvaluator"]


class DOTAEvaluator(DatasetEvaluator):
    """DOTA Task1 evaluator (see the module docstring).

    Args:
        dataset_name: a registered dataset with ``evaluator_type="dota"`` metadata.
        output_dir: where ``Task1_<class>.txt`` go; ``None`` = write nothing.
        nms_thr: polygon-IoU threshold of the class-wise NMS applied when merging patches (split sets only).
        distributed: gather predictions from all ranks and evaluate on the main process.
        gt_dir, imageset, is_split, classes: override the metadata's values.
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        nms_thr: float = 0.1,
        distributed: bool = True,
        *,
        gt_dir: Optional[Union[str, Sequence[str]]] = None,
        imageset=None,
        is_split: Optional[bool] = None,
        classes: Optional[Sequence[str]] = None,
    ):
        meta = MetadataCatalog.get(dataset_name)
        self._dataset_name = dataset_name
        self._classes = list(classes if classes is not None else meta.get("thing_classes", []))
        if not self._classes:
            raise ValueError(f"{dataset_name}: metadata has no thing_classes")
        self._gt_dir = gt_dir if gt_dir is not None else meta.get("gt_dir", None)
        self._imageset = imageset if imageset is not None else meta.get("imageset", None)
        self._is_split = bool(meta.get("is_split", False)) if is_split is None else bool(is_split)
        self._output_dir = output_dir
        self._nms_thr = float(nms_thr)
        self._distributed = distributed
        self._preds: List[tuple] = []

    def reset(self):
        self._preds = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            name = inp.get("image_id")
            if name is None:
                name = os.path.splitext(os.path.basename(inp["file_name"]))[0]
            inst = out["instances"].to("cpu")
            boxes = inst.pred_boxes.tensor.detach().numpy().astype(np.float64)
            if boxes.shape[1] == 5:
                quads = rboxes_to_quads(boxes)
            elif boxes.shape[1] == 4:  # axis-aligned boxes (x0, y0, x1, y1)
                x0, y0, x1, y1 = boxes.T
                quads = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1),
                                  np.stack([x0, y1], 1)], axis=1)
            else:
                raise ValueError(f"pred_boxes of shape {tuple(boxes.shape)}: expected rotated (N, 5) boxes")
            self._preds.append(
                (
                    str(name),
                    quads.reshape(-1, 8).astype(np.float32),
                    inst.scores.detach().numpy().astype(np.float32),
                    inst.pred_classes.detach().numpy().astype(np.int32),
                )
            )

    def _collect(self):
        names = np.array([p[0] for p in self._preds for _ in range(len(p[2]))], dtype=object)
        if not len(names):
            return names, np.zeros((0, 4, 2)), np.zeros(0), np.zeros(0, dtype=np.int64)
        quads = np.concatenate([p[1] for p in self._preds]).astype(np.float64).reshape(-1, 4, 2)
        scores = np.concatenate([p[2] for p in self._preds]).astype(np.float64)
        classes = np.concatenate([p[3] for p in self._preds]).astype(np.int64)
        return names, quads, scores, classes

    def _imageset_names(self):
        if self._imageset is None:
            return None
        items = [self._imageset] if isinstance(self._imageset, (str, os.PathLike)) else list(self._imageset)
        if not all(isinstance(i, (str, os.PathLike)) and os.path.isfile(i) for i in items):
            if all(isinstance(i, str) and (os.sep in i or i.endswith(".txt")) for i in items):
                logger.warning(f"{self._dataset_name}: image-set file(s) {items} not found; evaluating every "
                               f"label file of {self._gt_dir}")
                return None
            return [str(i) for i in items]  # a list of names
        return list(itertools.chain.from_iterable(read_imageset(i) for i in items))

    def evaluate(self):
        if self._distributed and comm.get_world_size() > 1:
            comm.synchronize()
            gathered = comm.gather(self._preds, dst=0)
            if not comm.is_main_process():
                return {}
            self._preds = list(itertools.chain(*gathered))
        names, quads, scores, classes = self._collect()
        bad = (classes < 0) | (classes >= len(self._classes))
        if bad.any():
            raise ValueError(f"{self._dataset_name}: predicted class ids outside 0..{len(self._classes) - 1}")
        finite = np.isfinite(quads).all(axis=(1, 2)) & np.isfinite(scores)
        if not finite.all():
            logger.warning(f"{self._dataset_name}: {int((~finite).sum())} predictions with non-finite boxes or "
                           f"scores (e.g. on {names[~finite][0]}) are left out")
            names, quads, scores, classes = names[finite], quads[finite], scores[finite], classes[finite]
        if self._is_split and len(names):
            names, quads, scores, classes = merge_detections(names, quads, scores, classes, self._nms_thr)
        elif len(names):
            o = np.lexsort((np.arange(len(names)), -scores, names.astype(str), classes))
            names, quads, scores, classes = names[o], quads[o], scores[o], classes[o]
        dets = OrderedDict()
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
        for c, cname in enumerate(self._classes):
            m = classes == c
            text = format_task1_text(Task1Detections(names[m], scores[m], quads[m]))
            if self._output_dir:
                with open(os.path.join(self._output_dir, f"Task1_{cname}.txt"), "w", encoding="utf-8",
                          newline="\n") as f:
                    f.write(text)
            dets[cname] = parse_task1_text(text, f"Task1_{cname}.txt")  # evaluate what was written
        if self._output_dir:
            logger.info(f"{self._dataset_name}: wrote Task1_<class>.txt for {len(self._classes)} classes to "
                        f"{self._output_dir}")
        if self._gt_dir is None:
            logger.info(f"{self._dataset_name}: no ground truth (gt_dir is None): submission files only")
            return {}
        gt = load_ground_truth(self._gt_dir, self._imageset_names(), self._classes)
        res = evaluate_task1(dets, gt)
        logger.info("\n" + format_table(res, title=f"Evaluation of {self._dataset_name}"
                                         + (" (patches merged)" if self._is_split else "")))
        out = OrderedDict()
        out["mAP"] = 100.0 * res.map
        for cname, r in res.classes.items():
            out[f"AP-{cname}"] = 100.0 * r.ap
        return OrderedDict(dota_task1=out)

    @property
    def protocol(self) -> str:
        """The protocol, as stated in the printed table."""
        return PROTOCOL
