"""Splitting DOTA images (and their labels) into fixed-size patches, as in ``docs/PROTOCOLS.md`` §4.

**Patches.** For each ``rate`` the image is first rescaled by ``rate`` (bicubic, ``cv2.INTER_CUBIC``; new size
``round(W * rate) x round(H * rate)``; nothing is done for ``rate == 1``). Patch origins along each axis are
``0, s, 2s, ...`` with stride ``s = subsize - gap``; the last one is shifted back to end at the border
(``length - subsize``), and an axis shorter than ``subsize`` has one origin, 0. Every patch is ``subsize x
subsize``: where the image ends it is padded (right/bottom) with ``pad_value`` (0). Patches are read with
``cv2.IMREAD_COLOR`` (8-bit, 3 channels: grey images are expanded, alpha dropped) and written as
``<image>__<rate>__<left>___<up><ext>``, the rate as Python prints the number given (``1``, ``0.5``, ``1.0``;
:func:`rate_str`), ``left``/``up`` the origin in pixels of the rescaled image.

**Labels.** Each object's corners are multiplied by ``rate`` and shifted by ``(-left, -up)``. With the patch
rectangle ``[left, left + subsize] x [up, up + subsize]`` (rescaled image pixels):

* all four corners inside (borders included): the object keeps its label unchanged (shifted), difficult flag
  included;
* otherwise, if the object's polygon and the rectangle intersect with positive area: the clipped polygon
  (``shapely.clip_by_rect``) is reduced to four corners by this rule: take the convex hull of the clipped
  polygon; a hull with 4 corners is kept as is; of a hull with more corners, the 4 corners spanning the
  largest quadrilateral (first such in hull order on ties); a triangle gets the midpoint of its longest side as
  4th corner. So the kept label never covers pixels outside the object's visible part. Corners are then ordered
  clockwise as seen, starting with the one closest to the object's first corner, shifted into the patch and
  clamped to ``[1, subsize]``. Its difficult flag is the object's own when ``intersection area / object area >
  iof_thr`` (0.7), else ``2``;
* objects that only touch the rectangle, or do not meet it, are not in the patch.

Objects with zero area that are cut by a border cannot be clipped: they are skipped and counted (warning), as are
objects that fall in no patch at all (they lie outside the image). A self-intersecting label is clipped as
``shapely.make_valid`` reads it. Class names are not checked here (any name is carried over).

**Output tree** (under ``DST``): ``images/<patch><ext>``, ``labelTxt/<patch>.txt`` (only when the source has
labels), ``images.txt`` (every patch name in ``images/``, sorted), ``source_images.txt`` (the source image names
those patches come from, sorted) and ``split_config.json`` (the parameters; another run into the same ``DST``
must use the same ones). Reruns skip a source image whose patches (and label files) all exist, without reading
it, unless ``force``. Files are written atomically (temporary name, then rename), so an interrupted run leaves no
truncated patch.

**PNG speed.** PNG encoding dominates the time. ``png_compression`` is the zlib level: 0 stores the pixels
uncompressed (filter NONE; fastest: ~8 ms per 1024² patch here, 3.1 MB), 1 (default) uses the SUB filter with the
RLE strategy (~35 ms, ~40 % smaller on aerial images), 2..9 libpng's adaptive filters (slowest, smallest).
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...structures.patches import (  # noqa: F401  (names of the split layout, re-exported)
    Number,
    parse_patch_name,
    parse_rate,
    patch_name,
    patch_origins,
    patch_starts,
    rate_str,
    scaled_size,
)
from ..fileio import image_size, list_images, write_atomic, write_text_atomic

from ...structures.quads import as_quads, signed_areas
from ...formats.dota import format_label_line, parse_label_file

logger = logging.getLogger(__name__)

__all__ = [
    "SplitConfig",
    "SplitStats",
    "rate_str",
    "parse_rate",
    "patch_name",
    "parse_patch_name",
    "patch_starts",
    "patch_origins",
    "scaled_size",
    "reduce_to_quads",
    "split_objects",
    "split_image",
    "split_dataset",
    "PATCH_EXTENSIONS",
]

#: formats the splitter writes patches in (OpenCV encoders)
PATCH_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SPLIT_VERSION = 1

@dataclass
class SplitConfig:
    """Splitting parameters (see the module docstring). ``rates`` keep their Python type (``1`` vs ``1.0``)."""

    subsize: int = 1024
    gap: int = 200
    rates: Tuple[Number, ...] = (1,)
    iof_thr: float = 0.7
    pad_value: int = 0
    ext: str = ".png"
    png_compression: int = 1

    def __post_init__(self):
        self.rates = tuple(self.rates)
        for r in self.rates:
            rate_str(r)
            if not (math.isfinite(r) and r > 0):
                raise ValueError(f"rates must be positive, got {r!r}")
        if len(set(rate_str(r) for r in self.rates)) != len(self.rates):
            raise ValueError(f"duplicate rates: {self.rates}")
        patch_starts(1, self.subsize, self.gap)  # validates subsize / gap
        if not self.ext.startswith("."):
            self.ext = "." + self.ext
        if self.ext.lower() not in PATCH_EXTENSIONS:
            raise ValueError(f"unsupported patch extension {self.ext!r} (one of {PATCH_EXTENSIONS})")
        if not 0 <= int(self.png_compression) <= 9:
            raise ValueError(f"png_compression must be 0..9, got {self.png_compression}")

    def record(self) -> dict:
        """What must match between runs into the same folder (the PNG level does not change the pixels)."""
        d = asdict(self)
        d.pop("png_compression")
        d["rates"] = [rate_str(r) for r in self.rates]
        d["version"] = SPLIT_VERSION
        return d


@dataclass
class SplitStats:
    """Counts of a split: source images done / skipped (already split), patches written, objects kept whole,
    cut and kept with their own flag, cut and written with difficult 2, cut degenerate (skipped), in no patch."""

    images: int = 0
    skipped_images: int = 0
    patches: int = 0
    whole: int = 0
    cut_kept: int = 0
    cut_difficult2: int = 0
    degenerate_cut: int = 0
    outside: int = 0
    examples: List[str] = field(default_factory=list)

    def add(self, other: "SplitStats") -> None:
        for k in ("images", "skipped_images", "patches", "whole", "cut_kept", "cut_difficult2", "degenerate_cut",
                  "outside"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.examples.extend(other.examples[: max(0, 5 - len(self.examples))])

    def summary(self) -> str:
        s = (
            f"{self.images} images split ({self.skipped_images} already done), {self.patches} patches written; "
            f"objects: {self.whole} whole, {self.cut_kept} cut (own flag), {self.cut_difficult2} cut (difficult 2)"
        )
        if self.degenerate_cut or self.outside:
            s += (
                f"; WARNING: {self.degenerate_cut} zero-area objects cut by a border and {self.outside} objects in "
                f"no patch were not written (e.g. {', '.join(self.examples)})"
            )
        return s


# ------------------------------------------------------------------------------------------------ labels
_COMBOS: Dict[int, np.ndarray] = {}


def _combos(n: int) -> np.ndarray:
    if n not in _COMBOS:
        _COMBOS[n] = np.array(list(combinations(range(n), 4)), dtype=np.int64)
    return _COMBOS[n]


def reduce_to_quads(rings: Sequence[np.ndarray], refs: Optional[np.ndarray] = None) -> np.ndarray:
    """Reduce convex rings (each ``(n, 2)``, ``n >= 3``, corners in order, no repeated closing corner) to quads
    ``(N, 4, 2)`` by the rule of the module docstring; corners clockwise as seen (positive
    :func:`~fasttcm.structures.quads.signed_areas`), starting with the one closest to ``refs[i]`` when given."""
    out = np.zeros((len(rings), 4, 2), dtype=np.float64)
    by_n: Dict[int, List[int]] = {}
    for i, r in enumerate(rings):
        n = len(r)
        if n < 3:
            raise ValueError(f"ring {i} has {n} corners; at least 3 are needed")
        by_n.setdefault(n, []).append(i)
    for n, idx in by_n.items():
        R = np.stack([np.asarray(rings[i], dtype=np.float64) for i in idx])  # (k, n, 2)
        if n == 3:
            e = np.roll(R, -1, axis=1) - R
            longest = np.argmax(np.hypot(e[..., 0], e[..., 1]), axis=1)
            quads = np.empty((len(idx), 4, 2))
            for k, j in enumerate(longest):
                pts = list(R[k])
                mid = 0.5 * (R[k, j] + R[k, (j + 1) % 3])
                pts.insert(j + 1, mid)
                quads[k] = pts
        elif n == 4:
            quads = R
        else:
            combos = _combos(n)  # (K, 4), increasing: keeps the hull order
            cand = R[:, combos]  # (k, K, 4, 2)
            o = cand[..., :1, :]
            c = cand - o
            x, y = c[..., 0], c[..., 1]
            area = np.abs(0.5 * np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y, axis=-1))
            best = np.argmax(area, axis=1)  # first maximum
            quads = cand[np.arange(len(idx)), best]
        out[idx] = quads
    # clockwise as seen (positive shoelace with y down), starting near the reference corner
    neg = signed_areas(out) < 0
    out[neg] = out[neg, ::-1]
    if refs is not None:
        refs = np.asarray(refs, dtype=np.float64).reshape(-1, 2)
        d = np.hypot(out[..., 0] - refs[:, None, 0], out[..., 1] - refs[:, None, 1])
        start = np.argmin(d, axis=1)
        roll = (np.arange(4)[None, :] + start[:, None]) % 4
        out = np.take_along_axis(out, roll[..., None], axis=1)
    return out


def split_objects(
    quads: np.ndarray,
    difficult: np.ndarray,
    origins: Sequence[Tuple[int, int]],
    subsize: int,
    iof_thr: float = 0.7,
) -> Tuple[List[Tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray, np.ndarray, Dict[str, int]]:
    """Labels of every patch: for objects ``quads`` (N, 4, 2) in pixels of the (rescaled) image and patch
    ``origins``, returns ``(per_patch, in_any_patch, degenerate_cut, counts)`` where ``per_patch[k]`` is
    ``(object indices, quads in patch pixels (M, 4, 2), difficult flags (M,))`` in object order, ``in_any_patch``
    (N,) bool, ``degenerate_cut`` (N,) bool and ``counts`` the whole / cut_kept / cut_difficult2 totals."""
    import shapely

    q = as_quads(quads)
    n = len(q)
    diff = np.asarray(difficult, dtype=np.int64).reshape(n)
    lo, hi = q.min(axis=1), q.max(axis=1)  # (N, 2)
    geoms = shapely.polygons(q) if n else np.zeros(0, dtype=object)
    if n:
        bad = ~shapely.is_valid(geoms)
        if bad.any():
            geoms[bad] = shapely.make_valid(geoms[bad])
    area = shapely.area(geoms) if n else np.zeros(0)
    in_any = np.zeros(n, dtype=bool)
    degenerate = np.zeros(n, dtype=bool)
    counts = {"whole": 0, "cut_kept": 0, "cut_difficult2": 0}
    per_patch = []
    for left, up in origins:
        x0, y0, x1, y1 = float(left), float(up), float(left + subsize), float(up + subsize)
        inside = (lo[:, 0] >= x0) & (lo[:, 1] >= y0) & (hi[:, 0] <= x1) & (hi[:, 1] <= y1)
        # strictly overlapping boxes: only those can share a positive area with the patch
        meets = (lo[:, 0] < x1) & (hi[:, 0] > x0) & (lo[:, 1] < y1) & (hi[:, 1] > y0) & ~inside
        cut = np.nonzero(meets & (area > 0))[0]
        degenerate |= meets & ~(area > 0)
        keep_idx = [np.nonzero(inside)[0]]
        keep_q = [q[inside] - np.array([x0, y0])]
        keep_d = [diff[inside]]
        counts["whole"] += int(inside.sum())
        in_any |= inside
        if len(cut):
            clipped = shapely.clip_by_rect(geoms[cut], x0, y0, x1, y1)
            inter = shapely.area(clipped)
            pos = inter > 0
            cut, clipped, inter = cut[pos], clipped[pos], inter[pos]
        if len(cut):
            hulls = shapely.convex_hull(clipped)
            coords, ring_id = shapely.get_coordinates(shapely.get_exterior_ring(hulls), return_index=True)
            splits = np.searchsorted(ring_id, np.arange(1, len(cut)))
            rings = [r[:-1] for r in np.split(coords, splits)]  # drop the closing corner
            rq = reduce_to_quads(rings, refs=q[cut, 0]) - np.array([x0, y0])
            rq = np.clip(rq, 1.0, float(subsize))
            big = inter / area[cut] > iof_thr
            d = np.where(big, diff[cut], 2)
            counts["cut_kept"] += int(big.sum())
            counts["cut_difficult2"] += int((~big).sum())
            in_any[cut] = True
            keep_idx.append(cut)
            keep_q.append(rq)
            keep_d.append(d)
        idx = np.concatenate(keep_idx)
        o = np.argsort(idx, kind="stable")
        per_patch.append((idx[o], np.concatenate(keep_q)[o], np.concatenate(keep_d)[o]))
    degenerate &= ~in_any
    return per_patch, in_any, degenerate, counts


# ------------------------------------------------------------------------------------------------ images
def _imwrite_params(ext: str, png_compression: int) -> list:
    import cv2

    if ext.lower() != ".png":
        return [cv2.IMWRITE_JPEG_QUALITY, 95] if ext.lower() in (".jpg", ".jpeg") else []
    lvl = int(png_compression)
    if lvl == 0:
        return [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    if lvl == 1:
        return [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
                cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    return [cv2.IMWRITE_PNG_COMPRESSION, lvl]


def _write_image_atomic(path: str, img: np.ndarray, params: list) -> None:
    import cv2

    def w(tmp):
        if not cv2.imwrite(tmp, img, params):
            raise OSError(f"cannot write {path}")

    write_atomic(path, w)


def split_image(
    image_path: str,
    label_path: Optional[str],
    dst: str,
    cfg: SplitConfig,
    force: bool = False,
    image_id: Optional[str] = None,
) -> SplitStats:
    """Split one image (and its labels when ``label_path`` is given) into ``dst/images`` (and ``dst/labelTxt``).

    Skips the image, without reading it, when every patch file (and label file) exists and ``force`` is false.
    """
    import cv2

    image_id = image_id or os.path.splitext(os.path.basename(image_path))[0]
    stats = SplitStats()
    img_dir, lbl_dir = os.path.join(dst, "images"), os.path.join(dst, "labelTxt")
    h, w, _ = image_size(image_path)
    jobs = []  # (rate, size, origins, names)
    for rate in cfg.rates:
        sw, sh = scaled_size(w, h, rate)
        origins = patch_origins(sw, sh, cfg.subsize, cfg.gap)
        jobs.append((rate, (sw, sh), origins, [patch_name(image_id, rate, x, y) for x, y in origins]))
    if not force:
        done = all(
            os.path.isfile(os.path.join(img_dir, nm + cfg.ext))
            and (label_path is None or os.path.isfile(os.path.join(lbl_dir, nm + ".txt")))
            for _, _, _, names in jobs
            for nm in names
        )
        if done:
            stats.skipped_images = 1
            return stats
    img = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read image {image_path}")
    if img.shape[:2] != (h, w):
        raise OSError(f"{image_path}: decoded size {img.shape[1]}x{img.shape[0]} differs from header {w}x{h}")
    labels = parse_label_file(label_path) if label_path is not None else None
    params = _imwrite_params(cfg.ext, cfg.png_compression)
    in_any = np.zeros(len(labels) if labels is not None else 0, dtype=bool)
    degenerate = np.zeros_like(in_any)
    S = cfg.subsize
    for rate, (sw, sh), origins, names in jobs:
        im = img if rate == 1 else cv2.resize(img, (sw, sh), interpolation=cv2.INTER_CUBIC)
        if labels is not None:
            per_patch, ia, dg, cnt = split_objects(labels.quads * float(rate), labels.difficult, origins, S,
                                                   cfg.iof_thr)
            in_any |= ia
            degenerate |= dg
            stats.whole += cnt["whole"]
            stats.cut_kept += cnt["cut_kept"]
            stats.cut_difficult2 += cnt["cut_difficult2"]
        for k, ((x, y), nm) in enumerate(zip(origins, names)):
            crop = im[y : y + S, x : x + S]
            if crop.shape[0] != S or crop.shape[1] != S:
                patch = np.full((S, S, im.shape[2]), cfg.pad_value, dtype=im.dtype)
                patch[: crop.shape[0], : crop.shape[1]] = crop
            else:
                patch = crop
            if labels is not None:
                idx, pq, pd = per_patch[k]
                text = "".join(
                    format_label_line(pq[j], labels.names[i], pd[j]) + "\n" for j, i in enumerate(idx.tolist())
                )
                write_text_atomic(os.path.join(lbl_dir, nm + ".txt"), text)
            _write_image_atomic(os.path.join(img_dir, nm + cfg.ext), patch, params)
            stats.patches += 1
    stats.images = 1
    if labels is not None:
        outside = ~in_any & ~degenerate
        stats.degenerate_cut = int(degenerate.sum())
        stats.outside = int(outside.sum())
        for j in np.nonzero(degenerate | outside)[0][:5]:
            stats.examples.append(f"{label_path}:{labels.lines[j]}")
    return stats


def _split_task(args):
    return split_image(*args)


def _write_lists(dst: str, ext: str) -> None:
    names = sorted(
        fn[: -len(ext)] for fn in os.listdir(os.path.join(dst, "images")) if fn.endswith(ext) and ".tmp" not in fn
    )
    sources = set()
    for nm in names:
        try:
            sources.add(parse_patch_name(nm)[0])
        except ValueError:
            pass
    write_text_atomic(os.path.join(dst, "images.txt"), "".join(n + "\n" for n in names))
    write_text_atomic(os.path.join(dst, "source_images.txt"), "".join(n + "\n" for n in sorted(sources)))


def split_dataset(
    src: str,
    dst: str,
    cfg: Optional[SplitConfig] = None,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
) -> SplitStats:
    """Split every image of ``src/images`` (labels from ``src/labelTxt`` when that folder exists; then every
    image needs a label file) into ``dst`` (tree in the module docstring). ``workers > 1`` uses a process pool.
    Returns the counts; logs a warning when objects could not be written."""
    from tqdm import tqdm

    cfg = cfg or SplitConfig()
    img_src = os.path.join(src, "images")
    lbl_src = os.path.join(src, "labelTxt")
    if not os.path.isdir(img_src):
        raise FileNotFoundError(f"{img_src} does not exist (expected SRC/images and optionally SRC/labelTxt)")
    images = list_images(img_src)
    has_labels = os.path.isdir(lbl_src)
    if has_labels:
        labels = {fn[:-4] for fn in os.listdir(lbl_src) if fn.endswith(".txt")}
        no_label = sorted(set(images) - labels)
        no_image = sorted(labels - set(images))
        if no_label:
            raise FileNotFoundError(f"{len(no_label)} images in {img_src} have no label file in {lbl_src} "
                                    f"(e.g. {no_label[0]}.txt)")
        if no_image:
            raise FileNotFoundError(f"{len(no_image)} label files in {lbl_src} have no image in {img_src} "
                                    f"(e.g. {no_image[0]})")
    os.makedirs(os.path.join(dst, "images"), exist_ok=True)
    if has_labels:
        os.makedirs(os.path.join(dst, "labelTxt"), exist_ok=True)
    rec_path = os.path.join(dst, "split_config.json")
    record = cfg.record()
    if os.path.isfile(rec_path):
        with open(rec_path, encoding="utf-8") as f:
            old = json.load(f)
        if old != record:
            raise ValueError(f"{dst} holds patches split with other parameters ({old}); now {record}: "
                             "use another destination or delete it")
    else:
        write_text_atomic(rec_path, json.dumps(record, indent=1))
    tasks = [
        (path, os.path.join(lbl_src, stem + ".txt") if has_labels else None, dst, cfg, force, stem)
        for stem, path in images.items()
    ]
    if workers > 1:  # largest images first: the processes finish closer together
        area = {t[0]: np.prod(image_size(t[0])[:2]) for t in tasks}
        tasks.sort(key=lambda t: -area[t[0]])
    total = SplitStats()
    bar = tqdm(total=len(tasks), desc=f"splitting {src}", unit="img", disable=not progress)
    try:
        if workers > 1 and len(tasks) > 1:
            import multiprocessing as mp

            import cv2

            # one OpenCV thread per process, set in the parent *before* forking: changing it in a forked child
            # can deadlock on the parent's thread pool (seen here), and N processes x N threads oversubscribe
            prev_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                with mp.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(min(workers, len(tasks))) as pool:
                    for st in pool.imap_unordered(_split_task, tasks):
                        total.add(st)
                        bar.update(1)
            finally:
                cv2.setNumThreads(prev_threads)
        else:
            for t in tasks:
                total.add(split_image(*t))
                bar.update(1)
    finally:
        bar.close()
    _write_lists(dst, cfg.ext)
    if total.degenerate_cut or total.outside:
        logger.warning(total.summary())
    else:
        logger.info(total.summary())
    return total
