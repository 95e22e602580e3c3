"""DOTA ``labelTxt`` files and ``Task1_<class>.txt`` detection files: the class lists, strict parsers, writers.

**labelTxt** (one file per image, ``<image>.txt``; UTF-8, a BOM is tolerated; LF, CR/LF or CR line ends)::

    imagesource:GoogleEarth                                   optional header lines, anywhere, skipped
    gsd:0.146343590398
    x1 y1 x2 y2 x3 y3 x4 y4 <class> [<difficult>]             one object per line, fields separated by spaces

Coordinates are pixels of the image (x right, y down), integers or floats, the four corners in DOTA's order
(clockwise as seen). ``difficult`` is ``0`` when absent; ``1`` marks a difficult object, and ``2`` is what
:mod:`fasttcm.data.dota.split` writes for a small remainder of an object cut by a patch border. The official
DOTA script silently skips any line with fewer than 9 fields; here a line is either blank, a header (fewer than 9
fields and ``key:value`` with an alphabetic key, quotes allowed, e.g. ``'gsd':0.1``), or an object line with
exactly 9 or 10 fields. Anything else, a non-numeric or non-finite (``nan``, ``inf``) coordinate, a difficult flag
other than 0/1/2, or a class outside the class list raises ``ValueError`` naming the file and line: a wrong file
never loses objects silently.

**Task1** (one file per class, ``Task1_<class>.txt``): ``<image> <score> x1 y1 x2 y2 x3 y3 x4 y4`` per line, over
whole images (or patches, before merging). Same strictness: 10 fields, finite numbers.
"""
from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from itertools import chain
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .common import parse_number, read_lines

__all__ = [
    "DOTA_V1_CLASSES",
    "DOTA_V15_CLASSES",
    "LabelFile",
    "parse_label_file",
    "parse_label_text",
    "format_number",
    "format_label_line",
    "read_imageset",
    "strip_image_ext",
    "Task1Detections",
    "parse_task1_text",
    "format_task1_text",
    "read_task1_file",
    "read_task1_dir",
    "task1_template",
    "write_task1_dir",
]

#: DOTA-v1.0 classes, in the order of the official devkit (category ids 0..14 follow it)
DOTA_V1_CLASSES: Tuple[str, ...] = (
    "plane",
    "baseball-diamond",
    "bridge",
    "ground-track-field",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "basketball-court",
    "storage-tank",
    "soccer-ball-field",
    "roundabout",
    "harbor",
    "swimming-pool",
    "helicopter",
)
#: DOTA-v1.5: v1.0 plus ``container-crane`` (id 15)
DOTA_V15_CLASSES: Tuple[str, ...] = DOTA_V1_CLASSES + ("container-crane",)

_HEADER = re.compile(r"""^\s*['"]?[A-Za-z][A-Za-z0-9_ -]*['"]?\s*:""")


@dataclass
class LabelFile:
    """Objects of one labelTxt file, in file order.

    ``quads`` (N, 4, 2) float64 pixels; ``names`` class names; ``class_ids`` (N,) int64 indices into the class
    list given to the parser (-1 when none was given); ``difficult`` (N,) int64 (0, 1 or 2); ``lines`` (N,) 1-based
    line numbers; ``header`` the ``key: value`` header lines (keys without quotes).
    """

    path: str
    quads: np.ndarray
    names: List[str]
    class_ids: np.ndarray
    difficult: np.ndarray
    lines: np.ndarray
    header: Dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)


def _check_row(fields: List[str], where: str, cls_index: Optional[Dict[str, int]]) -> None:
    """Raise the ``ValueError`` that an object line deserves (coordinates, class, difficult flag), if any."""
    for k, t in enumerate(fields[:8]):
        parse_number(t, where, f"coordinate {k + 1}")
    name = fields[8]
    if cls_index is not None and name not in cls_index:
        raise ValueError(
            f"{where}: unknown class {name!r} (expected one of: {', '.join(cls_index)})"
            + (" - DOTA-v1.5 labels need the v1.5 class list" if name == "container-crane" else "")
        )
    if len(fields) == 10 and fields[9] not in ("0", "1", "2"):
        raise ValueError(f"{where}: difficult flag must be 0, 1 or 2, got {fields[9]!r}")


def parse_label_text(text: str, path: str = "<text>", classes: Optional[Sequence[str]] = None) -> LabelFile:
    """Parse the content of a labelTxt file (see the module docstring); ``path`` names it in errors.

    ``classes``: allowed class names (their index becomes ``class_ids``); ``None`` accepts any name. The first
    bad line in file order is the one reported.
    """
    cls_index = None if classes is None else {c: i for i, c in enumerate(classes)}
    rows: List[List[str]] = []
    lines: List[int] = []
    header: Dict[str, str] = {}
    if text.startswith("\ufeff"):
        text = text[1:]
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        nf = len(fields)
        if nf == 9 or nf == 10:
            rows.append(fields)
            lines.append(lineno)
            continue
        if nf == 0:
            continue
        if nf < 9 and _HEADER.match(line):
            key, _, value = line.partition(":")
            header[key.strip().strip("'\"")] = value.strip().strip("'\"")
            continue
        for f, ln in zip(rows, lines):  # an earlier bad object line is reported first
            _check_row(f, f"{path}:{ln}", cls_index)
        raise ValueError(
            f"{path}:{lineno}: expected 9 or 10 space-separated fields (x1 y1 ... x4 y4 class [difficult]) or a "
            f"'key:value' header line, got {nf} fields: {line.strip()[:80]!r}"
        )
    n = len(rows)
    ok = True
    try:  # fast path: all numbers at once
        xy = np.fromiter(map(float, chain.from_iterable(f[:8] for f in rows)), np.float64, count=8 * n).reshape(n, 8)
        ok = bool(np.isfinite(xy).all())
    except ValueError:
        ok = False
    names = [f[8] for f in rows]
    diff_tok = [f[9] if len(f) == 10 else "0" for f in rows]
    if ok and cls_index is not None:
        ok = all(nm in cls_index for nm in names)
    if ok:
        ok = all(t in ("0", "1", "2") for t in diff_tok)
    if not ok:
        for f, ln in zip(rows, lines):
            _check_row(f, f"{path}:{ln}", cls_index)
    ids = [cls_index[nm] for nm in names] if cls_index is not None else [-1] * n
    return LabelFile(
        path=path,
        quads=xy.reshape(-1, 4, 2) if n else np.zeros((0, 4, 2)),
        names=names,
        class_ids=np.asarray(ids, dtype=np.int64),
        difficult=np.asarray([int(t) for t in diff_tok], dtype=np.int64),
        lines=np.asarray(lines, dtype=np.int64),
        header=header,
    )


def parse_label_file(path: str, classes: Optional[Sequence[str]] = None) -> LabelFile:
    """Read and parse one labelTxt file (see :func:`parse_label_text`)."""
    return parse_label_text("\n".join(read_lines(path)), path, classes)


def format_number(v: float) -> str:
    """A coordinate as written in label / Task1 files: integers without decimals (``274``), other values with
    up to 6 decimals, trailing zeros dropped (``137.5``). Exact for integers and for halves, quarters, ..."""
    if float(v).is_integer():
        return str(int(v))
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def format_label_line(quad, name: str, difficult: int) -> str:
    """``x1 y1 ... x4 y4 name difficult`` (no line end) for a (4, 2) or (8,) quad."""
    q = np.asarray(quad, dtype=np.float64).reshape(8)
    return " ".join(format_number(v) for v in q) + f" {name} {int(difficult)}"


_NAME_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".txt")


def strip_image_ext(name: str) -> str:
    """``name`` without a trailing image or ``.txt`` extension (``P0001.png`` -> ``P0001``)."""
    base, ext = os.path.splitext(name)
    return base if ext.lower() in _NAME_EXTS else name


def read_imageset(path: str) -> List[str]:
    """Image names of an image-set file: one per line, blank lines skipped, known extensions dropped, duplicates
    rejected (``ValueError`` naming the line)."""
    names: List[str] = []
    seen = set()
    with open(path, encoding="utf-8-sig") as f:
        for i, line in enumerate(f, 1):
            n = line.strip()
            if not n:
                continue
            n = strip_image_ext(n)
            if n in seen:
                raise ValueError(f"{path}:{i}: image {n!r} listed twice")
            seen.add(n)
            names.append(n)
    return names


# ----------------------------------------------------------------------------------------------- Task1 files
@dataclass
class Task1Detections:
    """Detections of one class: ``images`` (N,) image names, ``scores`` (N,) float64, ``quads`` (N, 4, 2) float64,
    in file order."""

    images: np.ndarray
    scores: np.ndarray
    quads: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> "Task1Detections":
        return Task1Detections(np.zeros(0, dtype=object), np.zeros(0), np.zeros((0, 4, 2)))

    @staticmethod
    def concat(parts: Sequence["Task1Detections"]) -> "Task1Detections":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Task1Detections.empty()
        return Task1Detections(
            np.concatenate([p.images for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.quads for p in parts]),
        )


def parse_task1_text(text: str, path: str = "<text>") -> Task1Detections:
    """Parse the content of a ``Task1_<class>.txt`` file (10 fields per non-blank line); ``path`` names it in
    errors. An empty text gives no detections."""
    if text.startswith("\ufeff"):
        text = text[1:]
    rows_ne = [(i, r) for i, r in enumerate((ln.split() for ln in text.splitlines()), 1) if r]
    for i, r in rows_ne:
        if len(r) != 10:
            raise ValueError(
                f"{path}:{i}: expected 10 space-separated fields (image score x1 y1 ... x4 y4), got {len(r)}"
            )
    if not rows_ne:
        return Task1Detections.empty()
    images = np.array([r[0] for _, r in rows_ne], dtype=object)
    try:
        nums = np.fromiter(
            map(float, chain.from_iterable(r[1:] for _, r in rows_ne)), np.float64, count=9 * len(rows_ne)
        ).reshape(-1, 9)
        bad = bool((~np.isfinite(nums)).any())
    except ValueError:
        nums, bad = None, True
    if bad:
        for i, r in rows_ne:
            parse_number(r[1], f"{path}:{i}", "score")
            for k, t in enumerate(r[2:]):
                parse_number(t, f"{path}:{i}", f"coordinate {k + 1}")
    return Task1Detections(images, nums[:, 0].copy(), nums[:, 1:].reshape(-1, 4, 2).copy())


def read_task1_file(path: str) -> Task1Detections:
    """Read and parse one ``Task1_<class>.txt`` file (see :func:`parse_task1_text`)."""
    return parse_task1_text("\n".join(read_lines(path)), path)


def format_task1_text(d: Task1Detections) -> str:
    """Task1 lines ``<image> <score> x1 y1 ... x4 y4`` (score with 6 decimals, coordinates with 2), in the
    order of ``d``."""
    q = np.asarray(d.quads, dtype=np.float64).reshape(-1, 8)
    return "".join(
        f"{img} {s:.6f} {r[0]:.2f} {r[1]:.2f} {r[2]:.2f} {r[3]:.2f} {r[4]:.2f} {r[5]:.2f} {r[6]:.2f} {r[7]:.2f}\n"
        for img, s, r in zip(d.images, np.asarray(d.scores, dtype=np.float64).tolist(), q.tolist())
    )


def task1_template(path_or_template: str) -> str:
    """The ``str.format`` template of the ``Task1_<class>.txt`` files that ``path_or_template`` names: a folder
    ``DIR`` (-> ``DIR/Task1_{}.txt``) or a template with one replacement field for the class, ``{}`` or the
    devkit's ``{:s}`` (``{0}`` and ``{0:s}`` too). Anything else raises ``ValueError`` (a template with other
    fields) or ``FileNotFoundError`` (no such folder), naming the path."""
    path = os.fspath(path_or_template)
    try:
        fields = [f for f in string.Formatter().parse(path) if f[1] is not None]
    except ValueError as e:  # an unmatched brace
        raise ValueError(f"{path}: not a template of Task1 files ({e})") from None
    if not fields:
        if os.path.isdir(path):
            return os.path.join(path, "Task1_{}.txt")
        if os.path.exists(path):
            raise ValueError(f"{path} is a file: give the folder of the Task1_<class>.txt files or a template with "
                             "{} or {:s} for the class")
        raise FileNotFoundError(f"{path}: no such folder (give the folder of the Task1_<class>.txt files or a "
                                "template with {} or {:s} for the class)")
    bad = [f for f in fields if f[1] not in ("", "0") or f[2] not in ("", "s") or f[3] is not None]
    if len(fields) != 1 or bad:
        raise ValueError(f"{path}: a Task1 template needs exactly one field for the class name, {{}} or {{:s}}")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: its folder {folder} does not exist")
    return path


def read_task1_dir(path_or_template: str, classes: Optional[Sequence[str]] = None) -> Dict[str, Task1Detections]:
    """Detections per class from a folder of ``Task1_<class>.txt`` files or a template for them (``DIR/Task1_{}.txt``
    or the devkit's ``DIR/Task1_{:s}.txt``; see :func:`task1_template`).

    With ``classes``: one entry per class, empty when its file is missing; when none of the files exists,
    ``FileNotFoundError`` names the template. Without: every file matching the template in its folder (the class
    is what the field matched).
    """
    template = task1_template(path_or_template)
    out: Dict[str, Task1Detections] = {}
    if classes is None:
        folder, base = os.path.split(template)
        pre, post = base.format(_FIELD_MARK).split(_FIELD_MARK, 1)  # the text around the field, braces unescaped
        for fn in sorted(os.listdir(folder or ".")):
            if fn.startswith(pre) and fn.endswith(post) and len(fn) > len(pre) + len(post):
                out[fn[len(pre) : len(fn) - len(post)]] = read_task1_file(os.path.join(folder, fn))
        return out
    found = 0
    for c in classes:
        p = template.format(c)
        if os.path.isfile(p):
            out[c] = read_task1_file(p)
            found += 1
        else:
            out[c] = Task1Detections.empty()
    if classes and not found:
        raise FileNotFoundError(f"{path_or_template}: none of the {len(classes)} Task1 files exists (e.g. "
                                f"{template.format(classes[0])})")
    return out


_FIELD_MARK = "\x00class\x00"  # stands for the class while splitting a template (no file name has it)


def write_task1_dir(
    folder: str, dets: Dict[str, Task1Detections], classes: Optional[Sequence[str]] = None
) -> List[str]:
    """Write ``folder/Task1_<class>.txt`` (:func:`format_task1_text`) for each class of ``dets``, and an empty
    file for each class of ``classes`` without an entry. Returns the written paths."""
    os.makedirs(folder, exist_ok=True)
    names = list(dets) + [c for c in (classes or ()) if c not in dets]
    paths = []
    for c in names:
        p = os.path.join(folder, f"Task1_{c}.txt")
        with open(p, "w", encoding="utf-8", newline="\n") as f:
            f.write(format_task1_text(dets.get(c, Task1Detections.empty())))
        paths.append(p)
    return paths
