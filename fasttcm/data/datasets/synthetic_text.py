"""A synthetic scene-text dataset rendered on the fly, deterministic from a seed.

Each image shows a few words (from a built-in word list or random letters/digits) drawn with the DejaVu TrueType
fonts that matplotlib ships, horizontal, rotated, or curved along a circular arc (glyph by glyph, each glyph rotated
to the arc's tangent), on a varied background (solid colour, gradient, smooth noise, stripes, random shapes) with
the text colour chosen for contrast against the background under the word.

Labels are exact, computed from the glyphs' ink boxes and the transforms applied to them:

* straight (horizontal or rotated) words: the ink box of the word as a quadrilateral, clockwise in image
  coordinates starting at the word's top-left (ICDAR 2015 order);
* curved words: ``2 * k`` points (``k`` = 4..8 per side), the upper boundary (the glyphs' top side) in reading order
  followed by the lower boundary back, clockwise in image coordinates (Total-Text order); the polygon encloses
  every glyph's ink box;
* optional don't-care instances (``cfg.dont_care_ratio``): tiny and/or blurred, low-contrast words labelled
  ``###`` with ``iscrowd=1``.

Coordinates are pixels (pixel ``(i, j)`` covers ``[i, i+1] x [j, j+1]``). Images are returned **RGB** ``uint8``
``(H, W, 3)``; :func:`register_synthetic_text` writes them as PNG (read back by Detectron2 in whatever format the
config asks for), so the channel order question does not arise for training. Same seed, same index, same Pillow /
FreeType build -> identical image and labels; images are independent of each other (``rng = f(seed, index)``).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import numpy as np
from detectron2.data import DatasetCatalog
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..fileio import FolderLock, datasets_root, stale_cache_todo, write_atomic, write_text_atomic
from ...structures.polygons import bbox_xywh, flatten
from .text import load_text_dataset, register_text_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "SyntheticTextConfig",
    "WORDS",
    "default_fonts",
    "render_synthetic_text_image",
    "materialize_synthetic_text",
    "register_synthetic_text",
    "register_builtin_synthetic_text",
    "SYNTHETIC_TEXT_TRAIN",
    "SYNTHETIC_TEXT_VAL",
]

#: bump when rendering changes: cached folders written by another version are re-rendered
RENDER_VERSION = 1

DEFAULT_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
)

WORDS = tuple(
    """
    open exit stop sale hotel cafe bar bank taxi park street road avenue market coffee pizza bakery pharmacy
    police station office center city music store shop books fresh daily news welcome hello world garden
    theatre cinema museum library school bus train metro airport parking entrance closed push pull free
    price discount special offer best food drink beer wine tea juice water menu lunch dinner breakfast
    restaurant kitchen grill burger noodle rice chicken fish sushi fruit apple orange lemon salad bread
    cake cookie candy ice cream chocolate milk cheese hospital clinic doctor dental beauty salon hair nails
    fashion shoes jeans sport fitness gym yoga dance club night life love home house room rent sell buy
    gold silver diamond jewel watch phone mobile computer digital print photo studio design art gallery
    travel tour ticket gate floor level north south east west left right up down danger warning caution
    slow speed limit one way only no entry toilet ladies gentlemen lift stairs fire safety first aid
    power energy green blue red yellow black white star sun moon sky ocean river lake mountain island
    king queen royal grand plaza central union national global express super mega ultra prime alpha
    omega delta nova vista luna terra metro urban tower bridge harbour marina beach resort spa villa
    """.split()
)

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class SyntheticTextConfig:
    """Parameters of a synthetic set. Sizes in pixels, angles in degrees, ratios are probabilities per word."""

    num_images: int = 200
    height: int = 320
    width: int = 320
    min_words: int = 2  # words attempted per image: uniform in [min_words, max_words]
    max_words: int = 6  # (a word that cannot be placed without overlap after a few tries is left out)
    curved_ratio: float = 0.3  # probability that a word (3+ characters) is curved along an arc
    rotated_ratio: float = 0.3  # probability that a straight word is rotated (else horizontal)
    seed: int = 0
    max_rotation: float = 45.0  # rotated words: angle uniform in +-max_rotation (also the arc's tilt bound / 2)
    min_font_size: int = 14  # font size (px, FreeType em size) uniform in [min, max]
    max_font_size: int = 40
    dont_care_ratio: float = 0.05  # probability that a word is a tiny/blurred "###" (iscrowd=1) instance
    random_string_ratio: float = 0.3  # probability that a word is a random letters/digits string
    min_contrast: float = 0.35  # minimum |luminance difference| (0..1) between text and its background mean
    margin: int = 3  # minimum gap (px) between words and to the image border
    fonts: Tuple[str, ...] = ()  # TrueType files (paths, or names in matplotlib's font folder); () = DejaVu set

    def __post_init__(self):
        if self.num_images < 0 or self.height < 32 or self.width < 32:
            raise ValueError(f"bad synthetic image count/size: {self.num_images} x {self.height}x{self.width}")
        if not (0 < self.min_words <= self.max_words):
            raise ValueError(f"need 0 < min_words <= max_words, got {self.min_words}, {self.max_words}")
        if not (4 <= self.min_font_size <= self.max_font_size):
            raise ValueError(
                f"need 4 <= min_font_size <= max_font_size, got {self.min_font_size}, {self.max_font_size}"
            )
        for k in ("curved_ratio", "rotated_ratio", "dont_care_ratio", "random_string_ratio", "min_contrast"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ValueError(f"{k} must lie in [0, 1], got {getattr(self, k)}")


# ------------------------------------------------------------------------------------------------- fonts --
def _font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def default_fonts() -> Tuple[str, ...]:
    """Paths of the DejaVu fonts used by default (shipped with matplotlib)."""
    d = _font_dir()
    paths = tuple(os.path.join(d, f) for f in DEFAULT_FONT_FILES if os.path.isfile(os.path.join(d, f)))
    if not paths:
        raise FileNotFoundError(f"no DejaVu TrueType fonts found in {d} (matplotlib's font folder)")
    return paths


@lru_cache(maxsize=None)
def _resolve_fonts(fonts: Tuple[str, ...]) -> Tuple[str, ...]:
    if not fonts:
        return default_fonts()
    out = []
    for f in fonts:
        p = f if os.path.isfile(f) else os.path.join(_font_dir(), f)
        if not os.path.isfile(p):
            raise FileNotFoundError(f"font not found: {f}")
        out.append(p)
    return tuple(out)


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    # BASIC layout: several times faster than libraqm and the same on machines with or without it (determinism);
    # no GPOS kerning, which only changes spacing, never the exactness of the labels (they come from the ink)
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


@lru_cache(maxsize=8192)
def _glyph(path: str, size: int, ch: str):
    """``(ink mask L image or None, ink left, ink top (rel. to pen/baseline, px), advance)`` of one character."""
    font = _font(path, size)
    adv = font.getlength(ch)
    l, t, r, b = font.getbbox(ch, anchor="ls")
    if r <= l or b <= t:
        return None, 0, 0, adv
    pad = 2
    img = Image.new("L", (r - l + 2 * pad, b - t + 2 * pad), 0)
    ImageDraw.Draw(img).text((pad - l, pad - t), ch, font=font, fill=255, anchor="ls")
    box = img.getbbox()
    if box is None:
        return None, 0, 0, adv
    ox, oy = pad - l, pad - t  # pen/baseline position inside img
    return img.crop(box), box[0] - ox, box[1] - oy, adv


def _word_mask(path: str, size: int, text: str) -> Tuple[Image.Image, Tuple[int, int, int, int]]:
    """Whole word rendered (with kerning) into an L mask and its ink box ``(x0, y0, x1, y1)`` (x1, y1 exclusive)."""
    font = _font(path, size)
    l, t, r, b = font.getbbox(text)
    pad = 2
    img = Image.new("L", (r - l + 2 * pad, b - t + 2 * pad), 0)
    ImageDraw.Draw(img).text((pad - l, pad - t), text, font=font, fill=255)
    return img, img.getbbox()


# ----------------------------------------------------------------------------------------------- drawing --
def _paste(canvas: Image.Image, mask: Image.Image, A: np.ndarray, color: Tuple[int, int, int]) -> None:
    """Composite ``color`` onto ``canvas`` through ``mask`` warped by the forward affine ``A`` (2x3, mask pixel
    coordinates -> canvas pixel coordinates, continuous; bilinear)."""
    mw, mh = mask.size
    corners = np.array([[0, 0, 1], [mw, 0, 1], [mw, mh, 1], [0, mh, 1]], dtype=np.float64) @ A.T
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, canvas.width), min(y1, canvas.height)
    if x1 <= x0 or y1 <= y0:
        return
    M, b = A[:, :2], A[:, 2]
    if np.allclose(M, np.eye(2)) and np.allclose(b, np.round(b)):  # pure integer shift: no resampling
        canvas.paste(color, (int(round(b[0])), int(round(b[1]))), mask)
        return
    Mi = np.linalg.inv(M)
    c = Mi @ (np.array([x0, y0], dtype=np.float64) - b)  # patch (0, 0) -> mask coordinates
    data = (Mi[0, 0], Mi[0, 1], c[0], Mi[1, 0], Mi[1, 1], c[1])
    patch = mask.transform((x1 - x0, y1 - y0), Image.AFFINE, data, resample=Image.BILINEAR)
    canvas.paste(color, (x0, y0), patch)


def _luminance(rgb) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float64)
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114) / 255.0


def _pick_color(rng: np.random.Generator, bg_patch: np.ndarray, min_contrast: float) -> Tuple[int, int, int]:
    """A random colour whose luminance differs from the patch mean by at least ``min_contrast`` (and by 2 std)."""
    lum = _luminance(bg_patch.reshape(-1, 3))
    mean, std = float(lum.mean()), float(lum.std())
    need = max(min_contrast, min(2.0 * std, 0.6))
    for _ in range(12):
        c = rng.integers(0, 256, size=3)
        if abs(float(_luminance(c)) - mean) >= need:
            return tuple(int(v) for v in c)
    return (0, 0, 0) if mean > 0.5 else (255, 255, 255)


# ------------------------------------------------------------------------------------------- backgrounds --
def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    import cv2

    kind = rng.integers(0, 4)
    c0, c1 = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    if kind == 0:  # solid
        bg = np.broadcast_to(c0, (h, w, 3)).astype(np.float32)
    elif kind == 1:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * np.arange(w, dtype=np.float32)[None, :] + np.sin(a) * np.arange(h, dtype=np.float32)[:, None]
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        bg = c0 + t[..., None] * (c1 - c0)
    elif kind == 2:  # smooth colour noise
        g = int(rng.integers(2, 10))
        coarse = rng.uniform(0, 255, size=(g, g, 3)).astype(np.float32)
        bg = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    else:  # stripes
        a = rng.uniform(0, np.pi)
        period = rng.uniform(8, max(w, h) / 2)
        t = np.cos(a) * np.arange(w, dtype=np.float32)[None, :] + np.sin(a) * np.arange(h, dtype=np.float32)[:, None]
        s = 0.5 + 0.5 * np.sin(2 * np.pi * t / period)
        s = s if rng.random() < 0.5 else (s > 0.5).astype(np.float32)
        bg = c0 + s[..., None] * (c1 - c0)
    if rng.random() < 0.5:  # fine grain
        bg = bg + rng.standard_normal(size=(h, w, 1), dtype=np.float32) * np.float32(rng.uniform(2, 10))
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    if rng.random() < 0.6:  # distractor shapes
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 7))):
            x = np.sort(rng.uniform(-0.2, 1.2, size=2) * w)
            y = np.sort(rng.uniform(-0.2, 1.2, size=2) * h)
            col = tuple(int(v) for v in rng.integers(0, 256, size=3))
            shape = rng.integers(0, 3)
            if shape == 0:
                d.rectangle([x[0], y[0], x[1], y[1]], fill=col)
            elif shape == 1:
                d.ellipse([x[0], y[0], x[1], y[1]], fill=col)
            else:
                d.line([x[0], y[1], x[1], y[0]], fill=col, width=int(rng.integers(1, 8)))
    return np.asarray(img)


# ---------------------------------------------------------------------------------------------- geometry --
def _dist_to_segments(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Distance from the origin to each segment P[i]-Q[i]."""
    d = Q - P
    t = np.clip(-(P * d).sum(1) / np.maximum((d * d).sum(1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(P + t[:, None] * d, axis=1)


class _Word:
    """A word laid out in a local frame: glyph masks + forward affines, and its exact polygon."""

    def __init__(self, pieces: List[Tuple[Image.Image, np.ndarray]], polygon: np.ndarray):
        self.pieces, self.polygon = pieces, polygon

    def shifted(self, dx: float, dy: float) -> "_Word":
        t = np.array([[0, 0, dx], [0, 0, dy]], dtype=np.float64)
        return _Word([(m, A + t) for m, A in self.pieces], self.polygon + [dx, dy])


def _layout_straight(mask: Image.Image, box, angle_deg: float, pad: float = 0.0) -> _Word:
    """Word mask rotated by ``angle_deg`` (counter-clockwise as seen) about its ink centre placed at the origin."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    a = math.radians(angle_deg)
    t = np.array([math.cos(a), -math.sin(a)])  # baseline direction
    dn = np.array([math.sin(a), math.cos(a)])  # "down" of the glyphs
    M = np.stack([t, dn], axis=1)
    if angle_deg == 0.0:  # keep pixels unresampled: integer shift
        cx, cy = math.floor(cx), math.floor(cy)
    A = np.concatenate([M, (-M @ np.array([cx, cy]))[:, None]], axis=1)
    quad = np.array([[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]])
    poly = (quad - [cx, cy]) @ M.T
    return _Word([(mask, A)], poly)


def _layout_curved(rng: np.random.Generator, font_path: str, size: int, text: str, tilt_deg: float) -> Optional[_Word]:
    """Glyphs along a circular arc centred at the origin, then moved so the polygon's box starts near (0, 0)."""
    glyphs = [_glyph(font_path, size, ch) for ch in text]
    pens = np.concatenate([[0.0], np.cumsum([g[3] for g in glyphs])[:-1]])
    inked = [(g, p) for g, p in zip(glyphs, pens) if g[0] is not None]
    if len(inked) < 2:
        return None
    start = inked[0][1] + inked[0][0][1]
    end = inked[-1][1] + inked[-1][0][1] + inked[-1][0][0].width
    length = end - start
    tops = min(g[2] for g, _ in inked)
    bottoms = max(g[2] + g[0].height for g, _ in inked)
    height = bottoms - tops
    span = rng.uniform(math.radians(50), math.radians(160))
    R = max(length / span, 1.5 * height + 4)
    s = 1.0 if rng.random() < 0.5 else -1.0  # +1: arch (text on top of the circle), -1: smile (below it)
    theta_c = -s * math.pi / 2 + math.radians(tilt_deg)
    pieces, corners, segs_p, segs_q = [], [], [], []
    for (mask, ix0, iy0, _adv), pen in inked:
        gw, gh = mask.size
        l_i = pen + ix0 + gw / 2.0 - (start + length / 2.0)
        th = theta_c + s * l_i / R
        u = s * np.array([math.cos(th), math.sin(th)])  # glyph up
        t = s * np.array([-math.sin(th), math.cos(th)])  # reading direction
        B = R * np.array([math.cos(th), math.sin(th)])  # baseline point under the glyph's ink centre
        M = np.stack([t, -u], axis=1)
        b = B - (gw / 2.0) * t - iy0 * u
        A = np.concatenate([M, b[:, None]], axis=1)
        pieces.append((mask, A))
        c = np.array([[0, 0], [gw, 0], [gw, gh], [0, gh]], dtype=np.float64) @ M.T + b
        corners.append(c)
        segs_p.append(c)
        segs_q.append(np.roll(c, -1, axis=0))
    C = np.concatenate(corners)
    r_out = float(np.linalg.norm(C, axis=1).max())
    r_in = float(_dist_to_segments(np.concatenate(segs_p), np.concatenate(segs_q)).min())
    ang = np.arctan2(C[:, 1], C[:, 0]) - theta_c
    ang = (ang + np.pi) % (2 * np.pi) - np.pi  # relative to the arc's centre angle, in (-pi, pi]
    lo, hi = float(ang.min()), float(ang.max())
    k = int(np.clip(math.ceil(math.degrees(hi - lo) / 20.0) + 1, 4, 8))
    step = (hi - lo) / (k - 1)
    r_out_v = r_out / math.cos(step / 2.0)  # chords between vertices stay outside radius r_out
    angles = theta_c + np.linspace(lo, hi, k)
    if s < 0:
        angles = angles[::-1]  # reading order runs with decreasing angle
    r_up, r_low = (r_out_v, r_in) if s > 0 else (r_in, r_out_v)
    dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    poly = np.concatenate([r_up * dirs, (r_low * dirs)[::-1]])
    return _Word(pieces, poly)


# --------------------------------------------------------------------------------------------- rendering --
def _random_word(rng: np.random.Generator, cfg: SyntheticTextConfig) -> str:
    if rng.random() < cfg.random_string_ratio:
        n = int(rng.integers(2, 10))
        if rng.random() < 0.25:
            return "".join(rng.choice(list("0123456789"), size=n))
        return "".join(rng.choice(list(_ALNUM), size=n))
    w = str(WORDS[int(rng.integers(len(WORDS)))])
    r = rng.random()
    return w.upper() if r < 0.35 else w.capitalize() if r < 0.7 else w


def render_synthetic_text_image(index: int, cfg: SyntheticTextConfig, return_background: bool = False):
    """Render image ``index`` of the synthetic set described by ``cfg``.

    Returns ``(image, annotations)``, or ``(image, annotations, background)`` when ``return_background``:
    ``image``/``background`` are RGB ``uint8`` arrays ``(cfg.height, cfg.width, 3)`` (background = the same
    picture without text); ``annotations`` are Detectron2 annotation dicts (``segmentation`` [flat polygon],
    ``bbox`` XYWH_ABS, ``bbox_mode``, ``category_id`` 0, ``iscrowd`` 1 for ``###``, ``text``).
    """
    from detectron2.structures import BoxMode
    from shapely.geometry import Polygon

    rng = np.random.default_rng([int(cfg.seed), int(index)])
    H, W = cfg.height, cfg.width
    fonts = _resolve_fonts(tuple(cfg.fonts))
    bg = _background(rng, H, W)
    canvas = Image.fromarray(bg.copy())
    placed: List = []  # shapely polygons (buffered by margin)
    annos = []
    for _ in range(int(rng.integers(cfg.min_words, cfg.max_words + 1))):
        text = _random_word(rng, cfg)
        font_path = fonts[int(rng.integers(len(fonts)))]
        dont_care = rng.random() < cfg.dont_care_ratio
        curved = not dont_care and len(text) >= 3 and rng.random() < cfg.curved_ratio
        rotated = not curved and rng.random() < cfg.rotated_ratio
        size = int(rng.integers(cfg.min_font_size, cfg.max_font_size + 1))
        blur = 0.0
        if dont_care:  # illegible on purpose: tiny, often blurred, low contrast
            size = int(rng.integers(6, 10))
            blur = float(rng.uniform(0.7, 1.5)) if rng.random() < 0.5 else 0.0
        angle = float(rng.uniform(-cfg.max_rotation, cfg.max_rotation)) if rotated else 0.0
        tilt = float(rng.uniform(-cfg.max_rotation, cfg.max_rotation)) / 2.0
        word, straight = None, None
        for attempt in range(12):
            if attempt and attempt % 4 == 0:
                size = max(6, int(size * 0.8))  # does not fit: smaller
                straight = None
            if curved:
                local = _layout_curved(rng, font_path, size, text, tilt)
                if local is None:
                    curved = False
                    continue
            else:
                if straight is None:  # render once per size
                    mask, box = _word_mask(font_path, size, text)
                    if box is None:
                        break
                    pad = 0.0
                    if blur:
                        mask = mask.filter(ImageFilter.GaussianBlur(blur))
                        pad = math.ceil(3 * blur)
                    straight = _layout_straight(mask, box, angle, pad)
                local = straight
            lo, hi = local.polygon.min(axis=0), local.polygon.max(axis=0)
            room = np.array([W, H]) - 2 * cfg.margin - (hi - lo)
            if np.any(room < 0):
                continue
            off = cfg.margin - lo + rng.uniform(0, 1, size=2) * room
            if not curved and angle == 0.0:
                off = np.floor(off)  # horizontal words stay on the pixel grid (no resampling blur)
            cand = local.shifted(float(off[0]), float(off[1]))
            shp = Polygon(cand.polygon)
            if not shp.is_valid or any(shp.intersects(p) for p in placed):
                continue
            word = cand
            break
        if word is None:
            continue
        placed.append(Polygon(word.polygon).buffer(cfg.margin))
        x0, y0, w, h = bbox_xywh(word.polygon)
        patch = bg[max(int(y0), 0): int(math.ceil(y0 + h)), max(int(x0), 0): int(math.ceil(x0 + w))]
        contrast = cfg.min_contrast * (0.6 if dont_care else 1.0)
        color = _pick_color(rng, patch, contrast)
        for mask, A in word.pieces:
            _paste(canvas, mask, A, color)
        annos.append(
            {
                "segmentation": [flatten(word.polygon)],
                "bbox": bbox_xywh(word.polygon),
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "iscrowd": int(dont_care),
                "text": "###" if dont_care else text,
            }
        )
    img = np.asarray(canvas)
    return (img, annos, bg) if return_background else (img, annos)


# ------------------------------------------------------------------------------------------ cache / register --
def _gt_line(anno: dict) -> str:
    coords = ",".join(f"{v:.2f}" for v in anno["segmentation"][0])
    return f"{coords},####{anno['text']}"


def _cfg_record(cfg: SyntheticTextConfig) -> dict:
    import PIL

    return {"render_version": RENDER_VERSION, "pillow": PIL.__version__, "config": asdict(cfg)}


def materialize_synthetic_text(cfg: SyntheticTextConfig, root: str) -> Tuple[str, str]:
    """Render the set into ``root/images/0000001.png ...`` and ``root/gts/0000001.txt ...`` (Total-Text 7-digit
    layout, lines ``x1,y1,...,xn,yn,####text``, pixels with 2 decimals) and return ``(image_dir, gt_dir)``.

    Rerunnable: files already present are kept (an interrupted run resumes), unless ``root/config.json`` records
    another configuration or renderer version, in which case the old files are deleted and everything is rendered
    again. Processes sharing the folder (e.g. distributed ranks) take turns through a lock file; writes are atomic.
    """
    img_dir, gt_dir = os.path.join(root, "images"), os.path.join(root, "gts")
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    with FolderLock(root):
        _materialize(cfg, root, img_dir, gt_dir)
    return img_dir, gt_dir


def _materialize(cfg: SyntheticTextConfig, root: str, img_dir: str, gt_dir: str) -> None:
    from tqdm import tqdm

    todo = stale_cache_todo(root, _cfg_record(cfg), {img_dir: ".png", gt_dir: ".txt"}, 7, cfg.num_images,
                            "synthetic text set")
    todo = [(i, os.path.join(img_dir, f"{i + 1:07d}.png"), os.path.join(gt_dir, f"{i + 1:07d}.txt")) for i in todo]
    for i, ip, gp in tqdm(todo, desc=f"rendering synthetic text ({root})", disable=len(todo) < 20):
        img, annos = render_synthetic_text_image(i, cfg)
        write_atomic(ip, lambda p: Image.fromarray(img).save(p, format="PNG", compress_level=3))
        write_text_atomic(gp, "".join(_gt_line(a) + "\n" for a in annos))


def synthetic_root(name: str, cfg: SyntheticTextConfig, root: Optional[str] = None) -> str:
    """Cache folder of a synthetic set: ``root`` or ``$DETECTRON2_DATASETS/synthetic_text/<name>_<seed>``."""
    if root is not None:
        return root
    return os.path.join(datasets_root(), "synthetic_text", f"{name}_{cfg.seed}")


def register_synthetic_text(
    name: str, cfg: SyntheticTextConfig, root: Optional[str] = None, overwrite: bool = False, **metadata
) -> str:
    """Register synthetic set ``name``: on ``DatasetCatalog.get(name)`` it is rendered into the cache folder
    (:func:`synthetic_root`; existing files are reused) and loaded from the written PNG + GT files.

    Metadata: ``thing_classes=["text"]``, ``evaluator_type="totaltext"`` (polygon protocol), ``gt_dir`` (the
    ``gts/`` folder of 7-digit ``x1,y1,...,####text`` files), ``gt_format="polygon_txt"``, ``word_spotting=True``,
    ``synthetic_config`` (the config as a dict); keywords override. Returns the cache folder.
    """
    folder = synthetic_root(name, cfg, root)
    img_dir, gt_dir = os.path.join(folder, "images"), os.path.join(folder, "gts")

    def _load():
        materialize_synthetic_text(cfg, folder)
        return load_text_dataset(img_dir, gt_dir, "polygon_txt", name=name)

    register_text_dataset(name, img_dir, gt_dir, fmt="polygon_txt", overwrite=overwrite, loader=_load,
                          synthetic_config=asdict(cfg), **metadata)
    return folder


#: built-in sets, sized for a CPU quick start (a few minutes of training); re-register with overwrite=True to change
SYNTHETIC_TEXT_TRAIN = SyntheticTextConfig(num_images=200, height=320, width=320, seed=0)
SYNTHETIC_TEXT_VAL = SyntheticTextConfig(num_images=24, height=320, width=320, seed=1)


def register_builtin_synthetic_text() -> None:
    """Register ``synthetic_text_train`` and ``synthetic_text_val`` (lazily; rendered on first use); names
    already registered are left alone."""
    for name, cfg in (("synthetic_text_train", SYNTHETIC_TEXT_TRAIN), ("synthetic_text_val", SYNTHETIC_TEXT_VAL)):
        if name not in DatasetCatalog.list():
            register_synthetic_text(name, cfg)
