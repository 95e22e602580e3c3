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
