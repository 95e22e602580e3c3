"""A synthetic aerial dataset for oriented object detection, deterministic from a seed, in DOTA format.

Each image (default 256 x 256) shows 3 to 8 non-overlapping objects of four classes, named after the DOTA classes
they imitate (so files, tools and evaluator work unchanged; the class list is :data:`SYNTHETIC_AERIAL_CLASSES`,
category ids 0..3):

==============  ================================================================  =========================
class           drawing (in the box frame: length along the width axis)          box (w x h, angle)
==============  ================================================================  =========================
plane           white/grey cross: pointed fuselage, swept wings, tail plane        30-48 long, span 0.85-1.05x
ship            hull with a square stern and a pointed bow, a superstructure       36-64 x 7-12
storage-tank    disc with an inner ring (round: its box is axis-aligned, a = 0)   square, side 14-30
small-vehicle   rectangle with a dark windshield band near the front              12-20 x 6-9
==============  ================================================================  =========================

Angles are uniform in [0, 360) (tanks: 0). The background is smooth noise in a land, urban or water palette with
fine grain and 0-3 straight "roads" (not labelled). About ``difficult_ratio`` of the objects are drawn at 35 %
opacity (low contrast) and labelled difficult (flag 1).

**Labels are exact**: each object's label is the rectangle it was generated in, and the drawing touches all four
sides of that rectangle and stays inside it (up to the partial coverage of edge pixels). Coordinates: pixel
``(i, j)`` covers ``[i, i + 1] x [j, j + 1]``; shapes are rendered 4 x 4 supersampled and averaged, so edge pixels
get the covered fraction of the object's colour and no pixel farther than about 1/4 px from a shape is touched.
Images are RGB ``uint8``; same seed and index -> identical image and labels, images independent of each other
(``rng = f(seed, index)``).

:func:`register_synthetic_aerial` writes the set once under a cache folder (``$DETECTRON2_DATASETS/
synthetic_aerial/<name>_<seed>/images/000001.png`` and ``labelTxt/000001.txt`` with ``imagesource:``/``gsd:``
header lines, corners clockwise as seen with 6 decimals) and loads it with the DOTA loader, so parser, splitter,
merger and evaluator are the ones real DOTA data uses. ``synthetic_aerial_train`` (200 images, seed 0) and
``synthetic_aerial_val`` (50 images, seed 1) are registered by :mod:`.builtin`; metadata: ``thing_classes``,
``evaluator_type="dota"``, ``gt_dir`` (the ``labelTxt`` folder), ``imageset=None``, ``is_split=False``.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from detectron2.data import DatasetCatalog

from ...structures.quads import rboxes_to_quads
from .dota import load_dota_dataset, register_dota
from ..fileio import FolderLock, datasets_root, stale_cache_todo, write_atomic, write_text_atomic
from ...formats.dota import format_label_line

logger = logging.getLogger(__name__)

__all__ = [
    "SYNTHETIC_AERIAL_CLASSES",
    "SyntheticAerialConfig",
    "render_synthetic_aerial_image",
    "materialize_synthetic_aerial",
    "register_synthetic_aerial",
    "register_builtin_synthetic_aerial",
    "SYNTHETIC_AERIAL_TRAIN",
    "SYNTHETIC_AERIAL_VAL",
]

SYNTHETIC_AERIAL_CLASSES: Tuple[str, ...] = ("plane", "ship", "storage-tank", "small-vehicle")
#: bump when rendering changes: cached folders written by another version are rendered again
RENDER_VERSION = 1


@dataclass
class SyntheticAerialConfig:
    """Size and content of a synthetic aerial set (see the module docstring)."""

    num_images: int = 200
    height: int = 256
    width: int = 256
    seed: int = 0
    min_objects: int = 3
    max_objects: int = 8
    difficult_ratio: float = 0.08

    def __post_init__(self):
        if self.num_images < 0 or self.height < 64 or self.width < 64:
            raise ValueError(f"need num_images >= 0 and images of at least 64 x 64, got {self}")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 0 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")


_PALETTES = {
    "land": ((70, 95, 50), (120, 110, 70)),
    "urban": ((105, 105, 100), (150, 145, 135)),
    "water": ((25, 50, 70), (45, 75, 95)),
}


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    import cv2

    kind = ("land", "urban", "water")[int(rng.integers(3))]
    lo, hi = (np.array(c, dtype=np.float64) for c in _PALETTES[kind])
    coarse = rng.random((6, 6, 1))
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    img = lo + (hi - lo) * np.clip(field, 0, 1)
    img += rng.normal(0.0, 4.0, (h, w, 1)) + rng.normal(0.0, 2.0, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 4))):  # roads: unlabelled distractors
        p = rng.uniform(0, 1, 2) * (w, h)
        t = rng.uniform(0, math.pi)
        d = np.array([math.cos(t), math.sin(t)]) * 2 * (w + h)
        g = int(rng.integers(90, 160))
        cv2.line(img, tuple(int(v) for v in p - d), tuple(int(v) for v in p + d), (g, g, g - 5),
                 int(rng.integers(4, 9)), cv2.LINE_AA)
    return img


def _to_image(box: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Points (K, 2) in the box frame (u along the width, v along the height) -> image pixels."""
    cx, cy, _, _, a = box
    t = math.radians(a)
    c, s = math.cos(t), math.sin(t)
    return np.stack([cx + uv[:, 0] * c + uv[:, 1] * s, cy - uv[:, 0] * s + uv[:, 1] * c], axis=1)


def _shape_parts(name: str, box: np.ndarray, rng: np.random.Generator) -> List[Tuple[str, np.ndarray, tuple]]:
    """Polygons or discs to draw for one object: ``[(kind, data, rgb)]`` with kind ``"poly"`` (points in image
    pixels) or ``"disc"`` (centre x, y, radius). Every part stays inside the box; together they touch its sides."""
    L, W = box[2], box[3]
    hl, hw = L / 2, W / 2
    parts: List[Tuple[str, np.ndarray, tuple]] = []
    if name == "plane":
        g = int(rng.integers(190, 250))
        col = (g, g, min(255, g + 5))
        f = 0.065 * L  # half width of the fuselage
        fus = np.array([[hl, 0], [hl - 0.12 * L, -f], [-hl, -f], [-hl, f], [hl - 0.12 * L, f]])
        u0 = 0.12 * L  # wing root leading edge
        wing = np.array([[u0, -f], [u0 - 0.30 * L, -hw], [u0 - 0.42 * L, -hw], [u0 - 0.30 * L, -f],
                         [u0 - 0.30 * L, f], [u0 - 0.42 * L, hw], [u0 - 0.30 * L, hw], [u0, f]])
        ts = 0.2 * W
        tail = np.array([[-hl + 0.14 * L, -f], [-hl + 0.02 * L, -ts], [-hl, -ts], [-hl, ts], [-hl + 0.02 * L, ts],
                         [-hl + 0.14 * L, f]])
        for p in (wing, tail, fus):
            parts.append(("poly", _to_image(box, p), col))
    elif name == "ship":
        hulls = ((235, 235, 235), (150, 150, 155), (150, 60, 45), (60, 60, 65))
        col = hulls[int(rng.integers(len(hulls)))]
        hull = np.array([[-hl, -hw], [hl - 0.25 * L, -hw], [hl, 0], [hl - 0.25 * L, hw], [-hl, hw]])
        parts.append(("poly", _to_image(box, hull), col))
        sup = np.array([[-0.35 * L, -0.3 * W], [-0.1 * L, -0.3 * W], [-0.1 * L, 0.3 * W], [-0.35 * L, 0.3 * W]])
        scol = tuple(int(v) for v in (255 - np.array(col)) * 0.5 + 100)
        parts.append(("poly", _to_image(box, sup), scol))
    elif name == "storage-tank":
        g = int(rng.integers(170, 240))
        parts.append(("disc", np.array([box[0], box[1], hl]), (g, g, g)))
        parts.append(("disc", np.array([box[0], box[1], 0.72 * hl]), (g - 35, g - 35, g - 30)))
    elif name == "small-vehicle":
        cars = ((200, 30, 30), (30, 60, 160), (230, 230, 230), (30, 30, 30), (180, 180, 190), (200, 170, 40))
        col = cars[int(rng.integers(len(cars)))]
        body = np.array([[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]])
        parts.append(("poly", _to_image(box, body), col))
        ws = np.array([[0.12 * L, -0.38 * W], [0.28 * L, -0.38 * W], [0.28 * L, 0.38 * W], [0.12 * L, 0.38 * W]])
        parts.append(("poly", _to_image(box, ws), (20, 25, 35)))
    else:  # pragma: no cover - guarded by the class list
        raise ValueError(name)
    return parts


_SUPERSAMPLE = 4


def _draw(img: np.ndarray, parts, alpha: float = 1.0) -> None:
    """Draw the parts onto ``img`` (in place) with exact area coverage: rendered 4 x 4 supersampled without
    anti-aliasing, then averaged, so a pixel gets the object's colour in proportion to how much of it the shape
    covers (within 1/4 px) and pixels the shape does not reach are left untouched. ``alpha`` < 1 blends."""
    import cv2

    S = _SUPERSAMPLE
    pts = np.concatenate(
        [d if k == "poly" else np.array([d[:2] - d[2], d[:2] + d[2]]) for k, d, _ in parts], axis=0
    )
    h, w = img.shape[:2]
    x0, y0 = (int(max(0, math.floor(v) - 2)) for v in pts.min(axis=0))
    x1 = int(min(w, math.ceil(pts[:, 0].max()) + 2))
    y1 = int(min(h, math.ceil(pts[:, 1].max()) + 2))
    if x1 <= x0 or y1 <= y0:
        return
    crop = img[y0:y1, x0:x1]
    big = np.repeat(np.repeat(crop, S, axis=0), S, axis=1)
    origin = np.array([x0, y0], dtype=np.float64)
    for kind, data, col in parts:
        if kind == "poly":
            # continuous coordinates, sub-pixel centres at (i + 0.5) / S: 1/16 of a sub-pixel precision
            q = np.round(((data - origin) * S - 0.5) * 16).astype(np.int32)
            cv2.fillPoly(big, [q], col, cv2.LINE_8, shift=4)
        else:
            c = tuple(int(round(((v - o) * S - 0.5) * 16)) for v, o in zip(data[:2], origin))
            cv2.circle(big, c, int(round(data[2] * S * 16)), col, -1, cv2.LINE_8, shift=4)
    hh, ww = crop.shape[:2]
    layer = big.reshape(hh, S, ww, S, 3).astype(np.float64).mean(axis=(1, 3))
    out = crop.astype(np.float64) * (1.0 - alpha) + layer * alpha
    img[y0:y1, x0:x1] = np.clip(np.round(out), 0, 255).astype(np.uint8)


def _sample_box(name: str, rng: np.random.Generator) -> Tuple[float, float, float]:
    """(length along the width axis, extent along the height axis, angle) of a new object."""
    if name == "plane":
        L = rng.uniform(30, 48)
        return L, L * rng.uniform(0.85, 1.05), rng.uniform(0, 360)
    if name == "ship":
        return rng.uniform(36, 64), rng.uniform(7, 12), rng.uniform(0, 360)
    if name == "storage-tank":
        d = rng.uniform(14, 30)
        return d, d, 0.0
    return rng.uniform(12, 20), rng.uniform(6, 9), rng.uniform(0, 360)


def render_synthetic_aerial_image(index: int, cfg: SyntheticAerialConfig, return_background: bool = False):
    """Render image ``index`` of the set: ``(image RGB uint8 (H, W, 3), objects)`` (and the background before
    any object was drawn when ``return_background``). Each object: ``{"name", "category_id", "rbox": (cx, cy, w, h,
    a) as generated (w along the drawing's length; not canonicalised), "quad": (4, 2) corners clockwise as seen,
    "difficult": 0 | 1}``."""
    import shapely

    rng = np.random.default_rng([int(cfg.seed), int(index), 7919])
    h, w = cfg.height, cfg.width
    img = _background(rng, h, w)
    bg = img.copy() if return_background else None
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    objects: List[Dict] = []
    placed = []
    margin = 2.0
    for _ in range(n):
        for _attempt in range(30):
            cid = int(rng.integers(len(SYNTHETIC_AERIAL_CLASSES)))
            name = SYNTHETIC_AERIAL_CLASSES[cid]
            L, W, a = _sample_box(name, rng)
            r = 0.5 * math.hypot(L, W)
            if 2 * (r + margin) >= min(h, w):
                continue
            cx = rng.uniform(r + margin, w - r - margin)
            cy = rng.uniform(r + margin, h - r - margin)
            box = np.array([cx, cy, L, W, a])
            quad = rboxes_to_quads(box)[0]
            poly = shapely.Polygon(quad)
            if any(poly.distance(p) < 3.0 for p in placed):
                continue
            difficult = int(rng.random() < cfg.difficult_ratio)
            _draw(img, _shape_parts(name, box, rng), alpha=0.35 if difficult else 1.0)
            placed.append(poly)
            objects.append({"name": name, "category_id": cid, "rbox": box, "quad": quad, "difficult": difficult})
            break
    return (img, objects, bg) if return_background else (img, objects)


# ------------------------------------------------------------------------------------------------- caching
def _label_text(objects) -> str:
    head = "imagesource:fasttcm-synthetic-aerial\ngsd:null\n"
    return head + "".join(format_label_line(o["quad"], o["name"], o["difficult"]) + "\n" for o in objects)


def materialize_synthetic_aerial(cfg: SyntheticAerialConfig, root: str) -> Tuple[str, str]:
    """Write the set as ``root/images/000001.png ...`` and ``root/labelTxt/000001.txt ...``; returns the two
    folders. Rerunnable: existing files are kept, unless ``root/config.json`` records another configuration or
    renderer version (then the set's files are rendered again). Writes are atomic; processes sharing the folder
    take turns through a lock file."""
    import cv2
    from tqdm import tqdm

    img_dir, lbl_dir = os.path.join(root, "images"), os.path.join(root, "labelTxt")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(lbl_dir, exist_ok=True)
    record = {"render_version": RENDER_VERSION, "opencv": cv2.__version__, "config": asdict(cfg)}
    with FolderLock(root):
        todo = stale_cache_todo(root, record, {img_dir: ".png", lbl_dir: ".txt"}, 6, cfg.num_images,
                                "synthetic aerial set")
        todo = [(i, os.path.join(img_dir, f"{i + 1:06d}.png"), os.path.join(lbl_dir, f"{i + 1:06d}.txt"))
                for i in todo]
        for i, ip, lp in tqdm(todo, desc=f"rendering synthetic aerial ({root})", disable=len(todo) < 50):
            img, objects = render_synthetic_aerial_image(i, cfg)
            write_text_atomic(lp, _label_text(objects))
            write_atomic(ip, lambda p, img=img: cv2.imwrite(p, img[:, :, ::-1].copy()))
    return img_dir, lbl_dir


def synthetic_aerial_root(name: str, cfg: SyntheticAerialConfig, root: Optional[str] = None) -> str:
    """Cache folder: ``root`` or ``$DETECTRON2_DATASETS/synthetic_aerial/<name>_<seed>``."""
    if root is not None:
        return root
    return os.path.join(datasets_root(), "synthetic_aerial", f"{name}_{cfg.seed}")


def register_synthetic_aerial(
    name: str, cfg: SyntheticAerialConfig, root: Optional[str] = None, overwrite: bool = False, **metadata
) -> str:
    """Register synthetic aerial set ``name``: rendered into the cache folder on ``DatasetCatalog.get(name)``
    (existing files reused), then loaded with the DOTA loader. Returns the cache folder."""
    folder = synthetic_aerial_root(name, cfg, root)
    img_dir, lbl_dir = os.path.join(folder, "images"), os.path.join(folder, "labelTxt")

    def _load():
        materialize_synthetic_aerial(cfg, folder)
        return load_dota_dataset(img_dir, lbl_dir, SYNTHETIC_AERIAL_CLASSES, name=name)

    register_dota(name, img_dir, lbl_dir, classes=SYNTHETIC_AERIAL_CLASSES, overwrite=overwrite, loader=_load,
                  synthetic_config=asdict(cfg), **metadata)
    return folder


#: built-in sets, sized for a CPU quick start; re-register with overwrite=True to change
SYNTHETIC_AERIAL_TRAIN = SyntheticAerialConfig(num_images=200, seed=0)
SYNTHETIC_AERIAL_VAL = SyntheticAerialConfig(num_images=50, seed=1)


def register_builtin_synthetic_aerial() -> None:
    """Register ``synthetic_aerial_train`` and ``synthetic_aerial_val`` (lazily; rendered on first use); names
    already registered are left alone."""
    for name, cfg in (
        ("synthetic_aerial_train", SYNTHETIC_AERIAL_TRAIN),
        ("synthetic_aerial_val", SYNTHETIC_AERIAL_VAL),
    ):
        if name not in DatasetCatalog.list():
            register_synthetic_aerial(name, cfg)
