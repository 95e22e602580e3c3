"""SCUT-CTW1500 ground truth (text lines, 14-point polygons) in its two text releases; also the generic
``x1,y1,...,xn,yn,####text`` polygon form (the synthetic set's GT uses it).

One file per image (``0001.txt`` for ``0001.jpg``), one text line per line, UTF-8 (BOM allowed), CR/LF or LF:

* **Original training labels**: 32 integers, ``xmin,ymin,xmax,ymax,dx1,dy1,...,dx14,dy14``; the 14 vertices are
  offsets relative to ``(xmin, ymin)``: ``x_i = xmin + dx_i``. No transcription (read as ``""``, not don't care).
* **Absolute labels** (test labels, later releases): ``x1,y1,...,xn,yn,####transcription``: absolute vertices
  (14 in CTW1500; any n >= 3 accepted), then ``####`` and the transcription (may contain commas). Transcription
  ``###`` (i.e. the line ends in ``,#######``) is don't care (``iscrowd=1``).
* A line without ``####`` and with an even number of fields other than 32 is read as absolute vertices with an
  empty transcription (exactly 32 fields always means the original relative form).

* **XML training labels** (``ctw1500_train_labels/0001.xml``, the release with transcriptions): one
  ``<image file="0001.jpg">`` element holding one ``<box left top width height>`` per text line, each with
  ``<segs>x1,y1,...,x14,y14</segs>`` (absolute vertices, any n >= 3 accepted), ``<label>transcription</label>``
  (``###`` = don't care; a box without ``<label>`` reads as ``""``, not don't care) and ``<pts x y/>`` elements,
  which are not needed and not read. The ``<box>`` attributes are the enclosing rectangle, also not needed.

Coordinates are pixels. Errors name ``file:line`` (for XML, the line of the ``<box>`` element).
"""
from __future__ import annotations

import os
from typing import List
from xml.parsers import expat

from ...formats.text import POLYGON_SEPARATOR, parse_polygon_lines
from .records import TextInstance, parse_coordinates, parse_numbers, read_lines, training_dont_care

__all__ = ["load_ctw1500_gt", "load_ctw1500_xml", "load_polygon_txt_gt"]


def load_polygon_txt_gt(path: str) -> List[TextInstance]:
    """Parse a generic polygon file: every line ``x1,y1,...,xn,yn,####text`` (n >= 3; ``###`` = don't care), with
    the official polygon reader the evaluator uses (:func:`fasttcm.formats.text.parse_polygon_lines`)."""
    return [TextInstance(w.points, w.text, training_dont_care(w.text), w.line)
            for w in parse_polygon_lines(read_lines(path), path, require_text=True)]


def load_ctw1500_xml(path: str) -> List[TextInstance]:
    """Parse one CTW1500 XML label file (see the module docstring); errors name ``file:line``."""
    with open(path, "rb") as f:
        data = f.read()
    boxes = []  # [line, segs text or None, label text or None]
    images = []
    stack: List[str] = []
    text: List[str] = []
    parser = expat.ParserCreate("utf-8")

    def start(tag, attrs):
        if tag == "image":
            images.append(parser.CurrentLineNumber)
        elif tag == "box":
            if "box" in stack:
                raise ValueError(f"{path}:{parser.CurrentLineNumber}: <box> inside another <box>")
            boxes.append([parser.CurrentLineNumber, None, None])
        elif tag in ("segs", "label") and stack and stack[-1] == "box":
            text.clear()
        stack.append(tag)

    def end(tag):
        stack.pop()
        if tag in ("segs", "label") and stack and stack[-1] == "box":
            slot = 1 if tag == "segs" else 2
            if boxes[-1][slot] is not None:
                raise ValueError(f"{path}:{boxes[-1][0]}: <box> has more than one <{tag}>")
            boxes[-1][slot] = "".join(text)

    def chars(data):
        if stack and stack[-1] in ("segs", "label"):
            text.append(data)

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise ValueError(f"{path}:{e.lineno}: malformed XML ({expat.ErrorString(e.code)})") from None
    if len(images) > 1:
        raise ValueError(f"{path}:{images[1]}: a second <image> element; expected one image per label file")
    out = []
    for line, segs, label in boxes:
        where = f"{path}:{line}"
        if segs is None:
            raise ValueError(f"{where}: <box> without <segs> (its polygon)")
        pts = parse_coordinates(segs.strip().rstrip(",").split(","), where)
        if len(pts) < 3:
            raise ValueError(f"{where}: {len(pts)} point(s) in <segs>, a polygon needs at least 3")
        label = (label or "").strip()
        out.append(TextInstance(pts, label, training_dont_care(label), line))
    return out


def _ctw1500_txt(path: str) -> List[TextInstance]:
    out = []
    for i, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        if POLYGON_SEPARATOR in line:  # absolute form: the official polygon reader, this line alone
            item = parse_polygon_lines([line], path, first_line=i)[0]
            out.append(TextInstance(item.points, item.text, training_dont_care(item.text), i))
            continue
        fields = [f for f in line.strip().rstrip(",").split(",")]
        vals = parse_numbers(fields, where)
        if len(vals) == 32:
            xmin, ymin = vals[0], vals[1]
            pts = vals[4:].reshape(-1, 2) + [xmin, ymin]
        elif len(vals) % 2 == 0 and len(vals) >= 6:
            pts = vals.reshape(-1, 2)
        else:
            raise ValueError(
                f"{where}: {len(vals)} numbers; expected 32 (xmin,ymin,xmax,ymax + 14 relative points) or "
                f"absolute x1,y1,...,xn,yn[,####text] with n >= 3"
            )
        out.append(TextInstance(pts, "", False, i))
    return out


def load_ctw1500_gt(path: str) -> List[TextInstance]:
    """Parse one CTW1500 label file: ``.xml`` (XML training labels), otherwise a text form (decided per line)."""
    if os.path.splitext(path)[1].lower() == ".xml":
        return load_ctw1500_xml(path)
    return _ctw1500_txt(path)
