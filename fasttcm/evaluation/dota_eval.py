"""DOTA Task1 evaluation (oriented boxes) as DOTA_devkit's Task1 scripts compute it (v1.0, and v1.5 with
``--v15``); rules in ``docs/PROTOCOLS.md`` §3. Command line (``tools/evaluate_dota.py`` is the same)::

    python tools/evaluate_dota.py --det 'DIR/Task1_{:s}.txt' --gt LABELTXT_DIR --imageset LIST \\
        [--json OUT] [--v15 [--honour-difficult]] [--strict-classes]

Needs only numpy, shapely and tabulate (no torch, no detectron2).

**Inputs.** Ground truth: one DOTA ``labelTxt/<image>.txt`` per image of the image set (format and strictness in
:mod:`fasttcm.formats.dota`; a missing file is an error). Image set: a text file, one image name per line
(blank lines skipped; a trailing ``.png/.jpg/.tif/.bmp/.txt`` is dropped). Detections: ``Task1_<class>.txt`` per
class, lines ``<image> <score> x1 y1 x2 y2 x3 y3 x4 y4`` over whole images, given as their folder or as a template
with the class as ``{}`` or ``{:s}`` (the devkit's ``Task1_{:s}.txt``).

**Classes.** Only the classes of the list are scored (15 for v1.0, 16 for v1.5); ground-truth objects of other
classes are left out and counted (``ignored 37 ground-truth objects of 1 class outside DOTA-v1.0:
container-crane``), as the devkit, which never reads other names. ``unknown_classes="error"`` (CLI
``--strict-classes``) refuses them instead, naming file and line. (Training loaders always refuse unknown classes.)

**Protocol** (per class): ``npos`` = ground truths of the class that are not difficult (flag 1 or 2; under
``--v15`` no object is difficult, as the devkit's v1.5 script reads labels, unless ``--honour-difficult``).
Detections are sorted by score, highest first; **equal scores keep their file order** (stable sort; the official
script's sort is not stable, so its order of tied detections is arbitrary). For each detection in that order, the
ground truth of the same image and class with the largest polygon IoU is taken (first in file order on equal
double-precision IoU). If that IoU is **strictly greater than 0.5**, decided exactly
(:func:`fasttcm.structures.quads.iou_above`: an exact 0.5 is not a match, although the devkit's float code
rounds a few such integer pairs up): a difficult ground truth makes the detection neither a true nor a false
positive; an unused one makes it a true positive and marks it used; a used one makes it a false positive.
Otherwise (IoU <= 0.5, or no ground truth) it is a false positive. Recall = cumulative TP / npos, precision =
cumulative TP / max(cumulative TP + FP, float64 eps). **AP** = VOC07 11-point: for ``t`` in
``numpy.arange(0, 1.1, 0.1)`` (the official script's thresholds, including their rounding: the 4th is
0.30000000000000004, so a recall of exactly 0.3 does not reach it), the largest precision at recall >= t, 0 if
none, averaged over the 11 values. A class with ``npos = 0`` gets AP 0. **mAP** = mean over all classes of the
list, so classes without ground truth count as 0.

**Geometry.** A quad is the region its ring encloses; a self-intersecting (bow-tie) quad is its two lobes, where
the devkit's value is an artefact of signed shoelace sums; bow ties and zero-area quads are counted and warned
about (:mod:`fasttcm.structures.quads`).

Where the official script crashes, fasttcm defines: an empty or missing ``Task1_<class>.txt`` gives that class no
detections (AP 0 when it has ground truth; when none of the class files exists, that is an error naming the
template); detections on images outside the image set are counted, reported with an example, and ignored.

**Output.** :class:`Task1Result` (AP as fractions in [0, 1]); the CLI prints the warnings and a per-class table
and writes :meth:`Task1Result.to_json` with ``--json``. Any failure to read the inputs is a one-line
``error: ...`` naming the path, exit status 2.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from fasttcm.structures.quads import (
    BOWTIE,
    DEGENERATE,
    PreparedQuads,
    indexed_ious,
    iou_above,
    iou_upper_bounds,
    overlap_pairs,
)
from fasttcm.formats.dota import (
    DOTA_V1_CLASSES,
    DOTA_V15_CLASSES,
    Task1Detections,
    parse_label_file,
    read_imageset,
    read_task1_dir,
    strip_image_ext,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PROTOCOL",
    "GroundTruth",
    "ClassResult",
    "Task1Result",
    "read_imageset",
    "load_ground_truth",
    "voc07_ap",
    "evaluate_task1",
    "evaluate_files",
    "format_table",
]

PROTOCOL = (
    "DOTA Task1 (oriented boxes): per-class VOC07 11-point AP, polygon IoU > 0.5, difficult ignored, "
    "score ties in file order"
)


@dataclass
class GroundTruth:
    """Ground truth of an image set, one row per object: ``image`` (index into ``images``), ``class_ids``,
    ``quads`` (N, 4, 2) pixels, ``difficult`` (N,) bool. Objects are in image-set order, then file order.
    ``ignored``: objects of classes outside ``classes`` that were read and left out (class -> count);
    ``difficult_used``: False when every object was read as not difficult (the DOTA-v1.5 script's rule)."""

    images: List[str]
    image: np.ndarray
    class_ids: np.ndarray
    quads: np.ndarray
    difficult: np.ndarray
    classes: Sequence[str]
    ignored: Dict[str, int] = field(default_factory=dict)
    difficult_used: bool = True


@dataclass
class ClassResult:
    """One class: ``ap`` in [0, 1]; ``npos`` non-difficult ground truths; ``num_dets`` detections evaluated
    (on images of the set); ``tp``/``fp`` counts; ``ignored`` detections matched to difficult objects."""

    ap: float
    npos: int
    num_dets: int
    tp: int
    fp: int
    ignored: int


@dataclass
class Task1Result:
    """mAP (fraction) over ``classes``, per-class results, and what was left out or looked suspicious:
    detections on unknown images (ignored), ground-truth objects of other classes (ignored, class -> count),
    bow-tie and zero-area quads among the evaluated ground truth and detections (counted, see
    :mod:`fasttcm.structures.quads`)."""

    map: float
    classes: Dict[str, ClassResult]
    num_images: int
    unknown_count: int = 0
    unknown_examples: List[str] = field(default_factory=list)
    ignored_gt: Dict[str, int] = field(default_factory=dict)
    bowtie_gt: int = 0
    bowtie_det: int = 0
    degenerate_gt: int = 0
    degenerate_det: int = 0
    difficult_used: bool = True
    class_list: str = "DOTA-v1.0"

    def warning_lines(self) -> List[str]:
        """The summary's warning lines (the same counts as :meth:`to_json`'s ``warnings``)."""
        out = []
        if self.ignored_gt:
            n = sum(self.ignored_gt.values())
            k = len(self.ignored_gt)
            names = ", ".join(c if k == 1 else f"{c} ({m})" for c, m in sorted(self.ignored_gt.items()))
            out.append(f"ignored {n} ground-truth objects of {k} class{'es' if k > 1 else ''} outside "
                       f"{self.class_list}: {names}")
        if self.unknown_count:
            out.append(f"ignored {self.unknown_count} detections on images outside the image set "
                       f"(e.g. {', '.join(self.unknown_examples)})")
        if self.bowtie_gt or self.bowtie_det:
            out.append(f"warning: {self.bowtie_gt} ground-truth and {self.bowtie_det} detection quads cross "
                       "themselves (bow ties); each is read as its two lobes (the devkit's IoU of such quads comes "
                       "from signed shoelace sums)")
        if self.degenerate_gt or self.degenerate_det:
            out.append(f"warning: {self.degenerate_gt} ground-truth and {self.degenerate_det} detection quads have "
                       "no area (IoU 0 with everything)")
        if not self.difficult_used:
            out.append("difficult flags not used: every object counts (as DOTA_devkit's v1.5 script reads labels)")
        return out

    def to_json(self) -> dict:
        """``{"mAP": x, "classes": {c: {"ap", "npos", "num_dets"}}, "protocol", "num_images", "difficult_used",
        "unknown_image_detections": {"count", "examples"}, "warnings": {"ignored_gt_objects": {class: n},
        "bowtie_gt", "bowtie_det", "degenerate_gt", "degenerate_det"}}``."""
        return {
            "mAP": self.map,
            "classes": {c: {"ap": r.ap, "npos": r.npos, "num_dets": r.num_dets} for c, r in self.classes.items()},
            "protocol": PROTOCOL,
            "num_images": self.num_images,
            "difficult_used": self.difficult_used,
            "unknown_image_detections": {"count": self.unknown_count, "examples": self.unknown_examples},
            "warnings": {
                "ignored_gt_objects": dict(sorted(self.ignored_gt.items())),
                "bowtie_gt": self.bowtie_gt,
                "bowtie_det": self.bowtie_det,
                "degenerate_gt": self.degenerate_gt,
                "degenerate_det": self.degenerate_det,
            },
        }


def class_list_name(classes: Sequence[str]) -> str:
    """``"DOTA-v1.0"`` / ``"DOTA-v1.5"`` for the devkit's lists, else ``"the class list"``."""
    if tuple(classes) == DOTA_V1_CLASSES:
        return "DOTA-v1.0"
    if tuple(classes) == DOTA_V15_CLASSES:
        return "DOTA-v1.5"
    return "the class list"


def load_ground_truth(
    gt_dirs: Union[str, Sequence[str]],
    imageset: Optional[Iterable[str]],
    classes: Sequence[str],
    unknown_classes: str = "ignore",
    use_difficult: bool = True,
) -> GroundTruth:
    """Read ``<gt_dir>/<image>.txt`` for every image of ``imageset`` (the first of ``gt_dirs`` that has it);
    ``imageset=None`` = every ``*.txt`` in the folders, sorted.

    Objects of classes outside ``classes`` are left out and counted in ``.ignored`` (``unknown_classes="ignore"``,
    what the devkit does: it never reads other names), or raise ``ValueError`` naming file and line
    (``"error"``). ``use_difficult=False`` reads every object as not difficult (the devkit's v1.5 script).
    Malformed lines raise ``ValueError`` (file and line); an image without a label file raises
    ``FileNotFoundError``."""
    if unknown_classes not in ("ignore", "error"):
        raise ValueError(f"unknown_classes must be 'ignore' or 'error', got {unknown_classes!r}")
    dirs = [gt_dirs] if isinstance(gt_dirs, (str, os.PathLike)) else list(gt_dirs)
    for d in dirs:
        if not os.path.isdir(d):
            raise FileNotFoundError(f"ground-truth folder {d} does not exist")
    listing = {}
    for d in reversed(dirs):  # first folder wins
        for fn in os.listdir(d):
            if fn.endswith(".txt"):
                listing[fn[:-4]] = os.path.join(d, fn)
    images = sorted(listing) if imageset is None else [strip_image_ext(str(n).strip()) for n in imageset]
    missing = [n for n in images if n not in listing]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} images of the image set have no label file in {', '.join(map(str, dirs))} "
            f"(e.g. {missing[0]}.txt)"
        )
    cls_index = {c: i for i, c in enumerate(classes)}
    ignored: Counter = Counter()
    img_idx, cls, quads, diff = [], [], [], []
    for k, n in enumerate(images):
        if unknown_classes == "error":
            lf = parse_label_file(listing[n], classes)
            ids = lf.class_ids
        else:
            lf = parse_label_file(listing[n], None)
            ids = np.fromiter((cls_index.get(nm, -1) for nm in lf.names), dtype=np.int64, count=len(lf))
            if (ids < 0).any():
                ignored.update(nm for nm, i in zip(lf.names, ids.tolist()) if i < 0)
        keep = ids >= 0
        if keep.any():
            img_idx.append(np.full(int(keep.sum()), k, dtype=np.int64))
            cls.append(ids[keep])
            quads.append(lf.quads[keep])
            diff.append((lf.difficult[keep] > 0) if use_difficult else np.zeros(int(keep.sum()), dtype=bool))
    cat = (lambda xs, empty: np.concatenate(xs) if xs else empty)
    if ignored:
        logger.warning(f"ignored {sum(ignored.values())} ground-truth objects of {len(ignored)} class(es) outside "
                       f"{class_list_name(classes)}: {', '.join(sorted(ignored))}")
    return GroundTruth(
        images=images,
        image=cat(img_idx, np.zeros(0, dtype=np.int64)),
        class_ids=cat(cls, np.zeros(0, dtype=np.int64)),
        quads=cat(quads, np.zeros((0, 4, 2))),
        difficult=cat(diff, np.zeros(0, dtype=bool)),
        classes=tuple(classes),
        ignored=dict(ignored),
        difficult_used=use_difficult,
    )


_VOC07_THRESHOLDS = np.arange(0.0, 1.1, 0.1)  # as the official script builds them (rounding included)


def voc07_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOC07 11-point AP: mean over ``t`` in ``arange(0, 1.1, 0.1)`` of ``max(prec[rec >= t])`` (0 when no
    recall reaches ``t``), accumulated as the official script does (``ap += p / 11``), so a perfect class reads
    1.0000000000000002."""
    rec = np.asarray(rec, dtype=np.float64)
    prec = np.asarray(prec, dtype=np.float64)
    ap = 0.0
    for t in _VOC07_THRESHOLDS:
        m = rec >= t
        ap += (float(prec[m].max()) if m.any() else 0.0) / 11.0
    return ap


def evaluate_task1(
    dets: Dict[str, Task1Detections], gt: GroundTruth, iou_thr: float = 0.5, max_unknown_examples: int = 5
) -> Task1Result:
    """Evaluate detections (class name -> :class:`Task1Detections`, in file order) against ``gt`` with the
    protocol of the module docstring. Classes of ``gt.classes`` missing from ``dets`` have no detections;
    classes in ``dets`` but not in ``gt.classes`` raise ``ValueError``."""
    classes = list(gt.classes)
    extra = [c for c in dets if c not in classes]
    if extra:
        raise ValueError(f"detections for classes outside the class list: {extra} (classes: {classes})")
    img_index = {n: i for i, n in enumerate(gt.images)}
    C = len(classes)

    # all detections of all classes, class-major, file order within a class
    parts_img, parts_cls, parts_score, parts_quad = [], [], [], []
    unknown_count, unknown_examples = 0, []
    for c, name in enumerate(classes):
        d = dets.get(name)
        if d is None or len(d) == 0:
            continue
        idx = np.fromiter((img_index.get(n, -1) for n in d.images), dtype=np.int64, count=len(d))
        known = idx >= 0
        if not known.all():
            bad = np.asarray(d.images)[~known]
            unknown_count += int(len(bad))
            for n in dict.fromkeys(bad.tolist()):
                if len(unknown_examples) < max_unknown_examples and n not in unknown_examples:
                    unknown_examples.append(n)
        parts_img.append(idx[known])
        parts_cls.append(np.full(int(known.sum()), c, dtype=np.int64))
        parts_score.append(np.asarray(d.scores, dtype=np.float64)[known])
        parts_quad.append(np.asarray(d.quads, dtype=np.float64).reshape(-1, 4, 2)[known])
    if unknown_count:
        logger.warning(
            f"{unknown_count} detections are on images outside the image set (e.g. {unknown_examples[0]}); "
            "they are ignored"
        )
    if parts_img:
        d_img, d_cls = np.concatenate(parts_img), np.concatenate(parts_cls)
        d_score, d_quad = np.concatenate(parts_score), np.concatenate(parts_quad)
    else:
        d_img = d_cls = np.zeros(0, dtype=np.int64)
        d_score, d_quad = np.zeros(0), np.zeros((0, 4, 2))
    nd = len(d_img)

    # best ground truth of each detection (same image and class), only where its IoU exceeds the threshold
    best_gt = np.full(nd, -1, dtype=np.int64)
    D, G = PreparedQuads(d_quad), PreparedQuads(gt.quads)
    if nd and len(gt.image):
        ia, ib = overlap_pairs(D.aabbs, d_img * C + d_cls, G.aabbs, gt.image * C + gt.class_ids)
        if len(ia):
            maybe = iou_upper_bounds(D, ia, G, ib) > iou_thr  # IoU <= bound: such pairs cannot match
            ia, ib = ia[maybe], ib[maybe]
            iou = indexed_ious(D, ia, G, ib)
            hit = iou_above(D, ia, G, ib, iou_thr, iou=iou)  # IoU > thr decided exactly
            ia, ib, iou = ia[hit], ib[hit], iou[hit]
            o = np.lexsort((ib, -iou, ia))  # per detection: largest IoU first, then first ground truth
            ia, ib = ia[o], ib[o]
            first = np.unique(ia, return_index=True)[1]
            best_gt[ia[first]] = ib[first]

    # visiting order: class, then score descending, ties in file order (lexsort is stable)
    order = np.lexsort((-d_score, d_cls))
    g_sorted = best_gt[order]
    matched = g_sorted >= 0
    diff_hit = np.zeros(nd, dtype=bool)
    diff_hit[matched] = gt.difficult[g_sorted[matched]]
    tp = np.zeros(nd, dtype=bool)
    cand = np.nonzero(matched & ~diff_hit)[0]
    if len(cand):
        first = np.unique(g_sorted[cand], return_index=True)[1]  # first visit of each ground truth
        tp[cand[first]] = True
    fp = ~tp & ~diff_hit
    cls_sorted = d_cls[order]
    bounds = np.searchsorted(cls_sorted, np.arange(C + 1))

    results: Dict[str, ClassResult] = {}
    for c, name in enumerate(classes):
        lo, hi = bounds[c], bounds[c + 1]
        npos = int(np.count_nonzero((gt.class_ids == c) & ~gt.difficult))
        tpc = np.cumsum(tp[lo:hi])
        fpc = np.cumsum(fp[lo:hi])
        if npos == 0 or hi == lo:
            ap = 0.0
        else:
            rec = tpc / float(npos)
            prec = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
            ap = voc07_ap(rec, prec)
        results[name] = ClassResult(
            ap=float(ap),
            npos=npos,
            num_dets=int(hi - lo),
            tp=int(tpc[-1]) if hi > lo else 0,
            fp=int(fpc[-1]) if hi > lo else 0,
            ignored=int(np.count_nonzero(diff_hit[lo:hi])),
        )
    m = float(np.mean([r.ap for r in results.values()])) if results else 0.0
    counts = {f"{kind}_{side}": int(np.count_nonzero(P.kinds == code))
              for side, P in (("gt", G), ("det", D)) for kind, code in (("bowtie", BOWTIE), ("degenerate", DEGENERATE))}
    if counts["bowtie_gt"] or counts["bowtie_det"]:
        logger.warning(f"{counts['bowtie_gt']} ground-truth and {counts['bowtie_det']} detection quads cross themselves "
                       "(bow ties); each is read as its two lobes")
    return Task1Result(m, results, len(gt.images), unknown_count, unknown_examples, ignored_gt=dict(gt.ignored),
                       difficult_used=gt.difficult_used, class_list=class_list_name(classes), **counts)


def evaluate_files(
    det: str,
    gt_dirs: Union[str, Sequence[str]],
    imageset: Optional[Union[str, Sequence[str]]] = None,
    classes: Sequence[str] = DOTA_V1_CLASSES,
    iou_thr: float = 0.5,
    unknown_classes: str = "ignore",
    use_difficult: bool = True,
) -> Task1Result:
    """Evaluate ``Task1_<class>.txt`` files (``det``: their folder, or a template with ``{}`` or ``{:s}``) against
    labelTxt folder(s). ``imageset``: an image-set file, a list of names, or ``None`` (every label file).
    ``unknown_classes`` / ``use_difficult``: see :func:`load_ground_truth`."""
    names = read_imageset(imageset) if isinstance(imageset, (str, os.PathLike)) else imageset
    gt = load_ground_truth(gt_dirs, names, classes, unknown_classes=unknown_classes, use_difficult=use_difficult)
    dets = read_task1_dir(det, classes)
    return evaluate_task1(dets, gt, iou_thr=iou_thr)


def format_table(result: Task1Result, title: Optional[str] = None) -> str:
    """Per-class table (AP in percent) with the protocol stated, the warnings, and the mAP last."""
    from tabulate import tabulate

    rows = [
        [c, f"{100 * r.ap:.2f}", r.npos, r.num_dets, r.tp, r.fp, r.ignored] for c, r in result.classes.items()
    ]
    rows.append(["mAP", f"{100 * result.map:.2f}", "", "", "", "", ""])
    head = title + "\n" if title else ""
    head += f"{PROTOCOL}; {result.num_images} images, {len(result.classes)} classes\n"
    head += "".join(line + "\n" for line in result.warning_lines())
    return head + tabulate(
        rows,
        headers=["class", "AP (%)", "npos", "dets", "TP", "FP", "on difficult"],
        tablefmt="pipe",
        disable_numparse=True,
        colalign=("left",) + ("right",) * 6,
    )
