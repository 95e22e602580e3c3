"""Common machinery of the text-dataset loaders: GT/image pairing, image sizes, annotation dicts, load summary,
and :func:`register_text_dataset`, the one call that registers a dataset in any supported format.

Dataset dicts follow Detectron2's standard (all coordinates in pixels of the image as Detectron2's
``read_image`` returns it)::

    {"file_name": str, "height": int, "width": int, "image_id": str (image file stem, e.g. "img_1"),
     "annotations": [{"segmentation": [[x1, y1, x2, y2, ...]],   # one polygon, floats
                      "bbox": [x, y, w, h], "bbox_mode": BoxMode.XYWH_ABS,   # axis-aligned box of the polygon
                      "category_id": 0, "iscrowd": 0 | 1,                 # 1 = don't care ("###")
                      "text": str}, ...]}

Image sizes come from the image header (PIL, no decode) **after** EXIF orientation, as Detectron2's
``read_image`` applies it (orientations 5-8 swap width and height); annotations are assumed to be drawn on the
image as displayed. Images with such a tag are counted in the load summary. An image whose header PIL cannot read
fails at load time naming the file; corrupt pixel data further in the file is only found when the mapper decodes
it (Detectron2's ``read_image`` then raises naming the file).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple


from ...structures.polygons import bbox_xywh, flatten, repair_polygon
from ..fileio import image_size, list_images
from .records import TextInstance

logger = logging.getLogger(__name__)

__all__ = [
    "TextInstance",
    "TextFormat",
    "TEXT_FORMATS",
    "LoadStats",
    "register_text_format",
    "get_text_format",
    "strip_prefix",
    "load_gt_file",
    "load_text_dataset",
    "register_text_dataset",
]

#: at most this many per-polygon repair/drop warnings are logged per load; the summary counts all of them
MAX_DETAILED_WARNINGS = 50
#: show a tqdm progress bar from this many ground-truth files on
PROGRESS_MIN_FILES = 200


@dataclass
class LoadStats:
    """Counts gathered while loading one dataset (filled by :func:`load_text_dataset`)."""

    images: int = 0
    instances: int = 0
    dont_care: int = 0
    repaired: int = 0
    dropped: int = 0
    exif_rotated: int = 0
    skipped_files: List[str] = field(default_factory=list)

    def summary(self, name: str) -> str:
        s = (
            f"{name}: {self.images} images, {self.instances} instances ({self.dont_care} don't care), "
            f"{self.repaired} repaired, {self.dropped} dropped"
        )
        if self.repaired or self.dropped:
            s += " (see warnings)"
        if self.exif_rotated:
            s += f", {self.exif_rotated} images with an EXIF rotation (sizes as read_image returns them)"
        if self.skipped_files:
            s += f", {len(self.skipped_files)} files skipped (unpaired)"
        return s


def _numeric_key(stem: str) -> Optional[str]:
    m = re.fullmatch(r"([A-Za-z_]*?)0*(\d+)", stem)
    return f"{m.group(1)}{m.group(2)}" if m else None


# ------------------------------------------------------------------------------------------------ formats --
@dataclass(frozen=True)
class TextFormat:
    """A ground-truth format: its name, the evaluation protocol its datasets use, whether end to end is scored
    in word-spotting mode by default, the GT file extensions (first wins when a stem has several), how a GT file
    stem maps to its image's stem, and the parser of one GT file."""

    name: str
    evaluator_type: str
    word_spotting: bool
    gt_extensions: Tuple[str, ...]
    gt_to_image_stem: Callable[[str], str]  # GT file stem -> image file stem
    parse: Callable[[str], List[TextInstance]]
    aliases: Tuple[str, ...] = ()


def strip_prefix(*prefixes: str) -> Callable[[str], str]:
    """A ``gt_to_image_stem`` that removes the first of ``prefixes`` a stem starts with (``gt_img_1`` -> ``img_1``)."""
    def f(stem: str) -> str:
        for p in prefixes:
            if stem.startswith(p):
                return stem[len(p):]
        return stem

    return f


#: the formats :func:`load_text_dataset` knows, by name; :mod:`.builtin` registers the built-in ones
TEXT_FORMATS: Dict[str, TextFormat] = {}
_ALIASES: Dict[str, str] = {}


def register_text_format(fmt: TextFormat) -> None:
    """Make ``fmt`` (and its aliases) a format name for :func:`load_text_dataset` / :func:`register_text_dataset`."""
    for key in (fmt.name,) + fmt.aliases:
        if key.lower() in _ALIASES and _ALIASES[key.lower()] != fmt.name:
            raise ValueError(f"text format name {key!r} is already taken by {_ALIASES[key.lower()]!r}")
    TEXT_FORMATS[fmt.name] = fmt
    for key in (fmt.name,) + fmt.aliases:
        _ALIASES[key.lower()] = fmt.name


def get_text_format(fmt: str) -> TextFormat:
    """The :class:`TextFormat` named ``fmt`` (or one of its aliases); ``ValueError`` naming the known ones."""
    key = _ALIASES.get(fmt.lower())
    if key is None:
        raise ValueError(f"unknown text dataset format {fmt!r}; expected one of {tuple(TEXT_FORMATS)}")
    return TEXT_FORMATS[key]


def load_gt_file(path: str, fmt: str) -> List[TextInstance]:
    """Parse one ground-truth file of format ``fmt`` (see :data:`TEXT_FORMATS`) into raw :class:`TextInstance` s.

    Polygons are not validated here (the evaluator may want them exactly as written); malformed lines raise
    ``ValueError`` naming ``file:line``.
    """
    return get_text_format(fmt).parse(path)


# -------------------------------------------------------------------------------------------------- load --
class _WarningBudget:
    def __init__(self, name: str):
        self.name, self.left = name, MAX_DETAILED_WARNINGS

    def warn(self, msg: str) -> None:
        if self.left > 0:
            logger.warning(f"{self.name}: {msg}")
        elif self.left == 0:
            logger.warning(f"{self.name}: further polygon warnings not shown; the load summary counts them all")
        self.left -= 1


def instances_to_annotations(
    instances: List[TextInstance], gt_path: str, stats: LoadStats, warn: Callable[[str], None]
) -> List[dict]:
    """Validate/repair each instance (:func:`fasttcm.structures.polygons.repair_polygon`) and build annotation dicts.

    Repairs and drops are reported through ``warn`` and counted in ``stats``.
    """
    from detectron2.structures import BoxMode

    annos = []
    for inst in instances:
        res = repair_polygon(inst.points)
        where = f"{gt_path}:{inst.line}"
        if res.status == "dropped":
            stats.dropped += 1
            warn(f"{where}: dropped polygon {inst.text!r}: {res.reason}")
            continue
        if res.status == "repaired":
            stats.repaired += 1
            warn(f"{where}: repaired polygon {inst.text!r}: {res.reason}")
        annos.append(
            {
                "segmentation": [flatten(res.points)],
                "bbox": bbox_xywh(res.points),
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "iscrowd": 1 if inst.ignore else 0,
                "text": inst.text,
            }
        )
        stats.instances += 1
        stats.dont_care += int(inst.ignore)
    return annos


def _pair_files(
    image_root: str, gt_root: str, fmt: TextFormat, on_missing: str, stats: LoadStats
) -> List[Tuple[str, str]]:
    """``[(gt_path, image_path)]`` sorted by GT file name; unpaired files raise or warn (``on_missing``)."""
    for d, what in ((image_root, "image folder"), (gt_root, "ground-truth folder")):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"{what} not found: {d}")
    images = list_images(image_root)
    by_num = {}
    for stem in images:
        k = _numeric_key(stem)
        if k is not None:
            by_num.setdefault(k, stem)
    gts: Dict[str, str] = {}  # GT stem -> path; for a stem present with several extensions the first listed wins
    for fn in sorted(os.listdir(gt_root)):
        stem, ext = os.path.splitext(fn)
        if ext.lower() not in fmt.gt_extensions:
            continue
        prev = gts.get(stem)
        if prev is None or fmt.gt_extensions.index(ext.lower()) < fmt.gt_extensions.index(
            os.path.splitext(prev)[1].lower()
        ):
            gts[stem] = os.path.join(gt_root, fn)
    pairs, used, problems = [], set(), []
    for stem in sorted(gts):
        img_stem = fmt.gt_to_image_stem(stem)
        if img_stem not in images:
            img_stem = by_num.get(_numeric_key(img_stem) or "", img_stem)
        if img_stem not in images:
            problems.append(f"no image for ground-truth file {gts[stem]} (looked for {img_stem}.* in {image_root})")
            stats.skipped_files.append(gts[stem])
            continue
        used.add(img_stem)
        pairs.append((gts[stem], images[img_stem]))
    for stem, path in images.items():
        if stem not in used:
            problems.append(f"no ground-truth file for image {path} (in {gt_root})")
            stats.skipped_files.append(path)
    if problems:
        msg = f"{len(problems)} unpaired file(s): " + "; ".join(problems[:10]) + ("; ..." if len(problems) > 10 else "")
        if on_missing == "error":
            raise FileNotFoundError(msg + " (pass on_missing='warn' to skip them)")
        logger.warning(msg)
    return pairs


def load_text_dataset(
    image_root: str,
    gt_root: str,
    fmt: str,
    name: Optional[str] = None,
    on_missing: str = "error",
    stats: Optional[LoadStats] = None,
) -> List[dict]:
    """Load a text dataset from its native layout into Detectron2 dataset dicts (see module docstring).

    Args:
        image_root: folder of images (``.jpg``/``.png``/...; not recursive).
        gt_root: folder of ground-truth files, one per image, in format ``fmt`` (:data:`TEXT_FORMATS`).
        name: dataset name used in log messages.
        on_missing: ``"error"`` (default): an image without GT or a GT without image raises ``FileNotFoundError``
            naming the file; ``"warn"``: they are skipped with a warning and counted.
        stats: optional :class:`LoadStats` to fill (the summary is logged either way).

    Raises ``ValueError`` naming ``file:line`` on a malformed GT line, and naming the image it cannot read.
    """
    if on_missing not in ("error", "warn"):
        raise ValueError(f"on_missing must be 'error' or 'warn', got {on_missing!r}")
    f = get_text_format(fmt)
    name = name or f"{f.name}:{gt_root}"
    stats = stats if stats is not None else LoadStats()
    pairs = _pair_files(image_root, gt_root, f, on_missing, stats)
    budget = _WarningBudget(name)
    from tqdm import tqdm

    dicts = []
    for gt_path, img_path in tqdm(pairs, desc=f"loading {name}", disable=len(pairs) < PROGRESS_MIN_FILES):
        h, w, rotated = image_size(img_path)
        stats.exif_rotated += int(rotated)
        annos = instances_to_annotations(f.parse(gt_path), gt_path, stats, budget.warn)
        dicts.append(
            {
                "file_name": img_path,
                "height": h,
                "width": w,
                "image_id": os.path.splitext(os.path.basename(img_path))[0],
                "annotations": annos,
            }
        )
        stats.images += 1
    logger.info(stats.summary(name))
    return dicts


# ---------------------------------------------------------------------------------------------- register --
def register_text_dataset(
    name: str,
    image_root: str,
    gt_root: str,
    fmt: str = "icdar15",
    on_missing: str = "error",
    overwrite: bool = False,
    loader: Optional[Callable[[], List[dict]]] = None,
    **metadata,
) -> None:
    """Register a text dataset in Detectron2's catalogs in one call; the files are read only on
    ``DatasetCatalog.get(name)``.

    Metadata set: ``thing_classes=["text"]``, ``evaluator_type`` ("icdar15" | "totaltext" | "ctw1500"),
    ``gt_dir=gt_root``, ``gt_format=fmt``, ``image_root``, ``word_spotting`` (default True for Total-Text and
    "polygon_txt", False otherwise); any ``metadata`` keyword overrides or adds to these.
    ``overwrite=True`` replaces an existing registration of ``name`` (otherwise ``ValueError``). ``loader``
    replaces the default loading function (e.g. a synthetic set that renders its files before reading them).

    Example::

        register_text_dataset("my_signs_train", "data/signs/images", "data/signs/gts", fmt="icdar15")
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

    f = get_text_format(fmt)
    if on_missing not in ("error", "warn"):
        raise ValueError(f"on_missing must be 'error' or 'warn', got {on_missing!r}")
    if name in DatasetCatalog.list():
        if not overwrite:
            raise ValueError(f"dataset {name!r} is already registered (pass overwrite=True to replace it)")
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)

    def _load():
        return load_text_dataset(image_root, gt_root, f.name, name=name, on_missing=on_missing)

    DatasetCatalog.register(name, loader or _load)
    meta = dict(
        thing_classes=["text"],
        evaluator_type=f.evaluator_type,
        gt_dir=gt_root,
        gt_format=f.name,
        image_root=image_root,
        word_spotting=f.word_spotting,
    )
    meta.update(metadata)
    MetadataCatalog.get(name).set(**meta)
