"""Small file helpers shared by the dataset writers (synthetic sets, DOTA splitting): atomic writes, image sizes.

Atomic: a file is written under a temporary name beside its destination (keeping its extension, so writers that
infer the format from the name still work) and renamed into place, so an interrupted run never leaves a partial
file that a rerun would take as done.
"""
import os
from typing import Callable, Tuple


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


def image_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` read from the image header (no full decode); errors name the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # noqa: BLE001 - any decoder error: name the file
        raise OSError(f"cannot read image {path}: {e}") from e
