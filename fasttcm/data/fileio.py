"""File helpers shared by the dataset loaders and writers: image listing and sizes, atomic writes, folder locks.

Atomic: a file is written under a temporary name beside its destination (keeping its extension, so writers that
infer the format from the name still work) and renamed into place, so an interrupted run never leaves a partial
file that a rerun would take as done.
"""
import os
from typing import Callable, Dict, NamedTuple

#: file extensions read as images (lower case), by the dataset loaders, the DOTA splitter and the demo
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_EXIF_ORIENTATION = 274


def datasets_root() -> str:
    """Where datasets live: ``$DETECTRON2_DATASETS`` (``~`` expanded), default ``datasets`` (relative to the
    working directory), as Detectron2's built-in datasets."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


class UnreadableImageError(OSError, ValueError):
    """An image file that cannot be opened (an ``OSError`` and a ``ValueError``); the message names the file."""


class ImageSize(NamedTuple):
    """Size of an image as Detectron2's ``read_image`` returns it (pixels, after EXIF orientation)."""

    height: int
    width: int
    exif_rotated: bool  # True when an EXIF orientation of 5-8 swapped the stored width and height


def image_size(path: str) -> ImageSize:
    """``(height, width, exif_rotated)`` from the image header (no decode), after EXIF orientation as
    ``detectron2.data.detection_utils.read_image`` (and ``cv2.imread``) apply it: orientations 5-8 swap width
    and height. Raises :class:`UnreadableImageError` naming the file when it cannot be opened."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                orient = im.getexif().get(_EXIF_ORIENTATION)
            except Exception:  # noqa: BLE001 - malformed EXIF: read_image ignores it too
                orient = None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UnreadableImageError(f"{path}: unreadable image ({e})") from None
    if orient in (5, 6, 7, 8):  # transposed on display: displayed height = stored width
        return ImageSize(w, h, True)
    return ImageSize(h, w, False)


def list_images(folder: str) -> Dict[str, str]:
    """``{stem: path}`` of the image files (:data:`IMAGE_EXTENSIONS`, any case) directly in ``folder``, sorted by
    file name; temporary files of the atomic writers (``*.tmp<pid>.<ext>``) are skipped. Two images with the same
    stem (``img_1.jpg`` and ``img_1.png``) raise ``ValueError`` naming both: which one was meant is unknowable."""
    out: Dict[str, str] = {}
    for fn in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(fn)
        if ext.lower() in IMAGE_EXTENSIONS and ".tmp" not in stem:
            if stem in out:
                raise ValueError(f"{folder}: two images named {stem} ({os.path.basename(out[stem])}, {fn})")
            out[stem] = os.path.join(folder, fn)
    return out


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path``."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{os.getpid()}{ext}"
    write(tmp)
    os.replace(tmp, path)


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` as UTF-8 with LF line ends to ``path`` atomically."""

    def w(p):
        with open(p, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    write_atomic(path, w)


class FolderLock:
    """Exclusive lock on ``root/.lock`` (POSIX ``flock``; no-op where unavailable): one process renders a folder
    at a time, the others wait and then find the files there."""

    def __init__(self, root: str):
        self.path, self.f = os.path.join(root, ".lock"), None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows: no lock; atomic writes still keep every file complete
            return self
        self.f = open(self.path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            import fcntl

            fcntl.flock(self.f, fcntl.LOCK_UN)
            self.f.close()


def stale_cache_todo(root: str, record: dict, folders, digits: int, count: int, what: str) -> list:
    """Bring a folder of rendered items up to date with ``record`` (the generator's configuration) and say which
    items still need rendering.

    ``folders`` maps each output folder to the extension of its files; item ``i`` is the file named
    ``str(i + 1).zfill(digits) + ext`` in every folder. When ``root/config.json`` differs from ``record`` (or is
    absent or unreadable), every digit-named file of ours is removed first and the record written afterwards, so
    an interrupted run resumes reusing only items rendered with this configuration. Returns the indices ``i`` in
    ``range(count)`` with a file missing in some folder.
    """
    import json
    import logging

    rec_path = os.path.join(root, "config.json")
    fresh = True
    if os.path.isfile(rec_path):
        try:
            with open(rec_path, encoding="utf-8") as f:
                fresh = json.load(f) != json.loads(json.dumps(record))
        except json.JSONDecodeError:
            fresh = True
        if fresh:
            logging.getLogger(__name__).info(f"{root}: cached {what} has another configuration; rendering it again")
    if fresh:
        for d, ext in folders.items():
            for fn in os.listdir(d):
                stem, e = os.path.splitext(fn)
                if e == ext and len(stem) == digits and stem.isdigit():
                    os.remove(os.path.join(d, fn))
        write_text_atomic(rec_path, json.dumps(record, indent=1))
    return [
        i for i in range(count)
        if not all(os.path.isfile(os.path.join(d, f"{i + 1:0{digits}d}{ext}")) for d, ext in folders.items())
    ]
