#!/usr/bin/env python
"""Install Detectron2 for fasttcm (see README "Installation" and docs/DETECTRON2.md).

1. A detectron2 whose compiled ops (``detectron2._C`` as a shared library) are importable is kept as it is.
2. Otherwise the PyPI sdist ``pb1-detectron2==0.6`` (byte-identical Python files to detectron2's v0.6 tag, but no
   C++/CUDA sources) is fetched, verified against a pinned sha256 and installed the way detectron2's own setup.py
   lays it out, without building anything:
   - its ``detectron2/`` package (model-zoo configs included);
   - the three projects detectron2's setup installs under ``detectron2.projects``: ``projects/PointRend/point_rend``
     as ``detectron2.projects.point_rend``, ``projects/DeepLab/deeplab`` as ``.deeplab`` and
     ``projects/Panoptic-DeepLab/panoptic_deeplab`` as ``.panoptic_deeplab``;
   - a ``detectron2-0.6.dist-info`` so pip can list and uninstall it.
   No other top-level folder of the sdist (it also packs ``tools/``) lands in site-packages. Two files differ from
   the sdist: a small ``detectron2/_C.py`` is written that loads fasttcm's PyTorch implementations of the ops, and
   ``detectron2/export/__init__.py`` is replaced by :data:`EXPORT_INIT` so that ``TracingAdapter``,
   ``scripting_with_instances`` and ``dump_torchscript_IR`` import on torch 2 (detectron2 0.6 imported its Caffe2
   export API first, and torch 2 has no ``caffe2``); the Caffe2 API loads where ``caffe2`` is importable.
   docs/DETECTRON2.md states both.

Idempotent: a second run with nothing to do takes well under a second; an installation made by an older version
of this script (its marker names an older layout) is replaced. Offline: pass ``--sdist PATH`` (or set
``FASTTCM_DETECTRON2_SDIST``) to a local copy of the tarball; downloads are cached in ``~/.cache/fasttcm``.
``--target DIR`` installs into DIR instead of this Python's site-packages (tests use it).
"""
import argparse
import hashlib
import importlib.machinery
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

SDIST_NAME = "pb1-detectron2"
SDIST_VERSION = "0.6"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
MARKER = ".fasttcm-sdist-sha256"
# What this script installs from the sdist; bump it when that changes, so older installations are replaced.
# 1: detectron2/ and _C.py. 2: + detectron2.projects.*, patched detectron2/export/__init__.py.
LAYOUT = 2
# sdist folder -> package folder, as detectron2 0.6's setup.py maps them (its package_dir for detectron2.projects)
PROJECTS = {
    "projects/PointRend/point_rend": "detectron2/projects/point_rend",
    "projects/DeepLab/deeplab": "detectron2/projects/deeplab",
    "projects/Panoptic-DeepLab/panoptic_deeplab": "detectron2/projects/panoptic_deeplab",
}
EXPORT_INIT_PATH = "detectron2/export/__init__.py"
EXPORT_INIT_ORIGINAL_SHA256 = "09f9d02c88da83a6866cdde3bd78cceffe0b4eeaabc9987ce1b30bdd02a68311"
EXPORT_INIT = '''# -*- coding: utf-8 -*-
# Replaced by fasttcm's tools/install_detectron2.py (see fasttcm's docs/DETECTRON2.md). detectron2 0.6's version
# imported the Caffe2 export API (.api) first, which needs the `caffe2` package that torch 2 no longer has, so
# nothing here could be imported. The TorchScript exports need no caffe2 and always load; the Caffe2 API loads
# when caffe2 is importable, and otherwise asking for one of its names raises an ImportError that says why.

from .flatten import TracingAdapter
from .torchscript import scripting_with_instances, dump_torchscript_IR

_CAFFE2_API = ("add_export_config", "export_caffe2_model", "Caffe2Model", "export_onnx_model", "Caffe2Tracer")

try:
    from .api import *
except ImportError as _missing:
    if (_missing.name or "").split(".")[0] != "caffe2":
        raise
    _CAFFE2_ERROR = str(_missing)

    def __getattr__(name):
        if name in _CAFFE2_API:
            raise ImportError(
                f"detectron2.export.{name} is part of detectron2's Caffe2 export, which needs caffe2 "
                f"({_CAFFE2_ERROR}); torch 2 no longer includes it. TracingAdapter, scripting_with_instances and "
                "dump_torchscript_IR work without it.",
                name="caffe2",
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [k for k in globals().keys() if not k.startswith("_")]
'''

SHIM = '''"""detectron2._C supplied by fasttcm: this detectron2 was installed without compiled ops.

Written by fasttcm's tools/install_detectron2.py. It loads fasttcm/layers/_C.py (pure PyTorch, CPU and CUDA)
without importing the rest of fasttcm, so `import detectron2.layers` works before or without `import fasttcm`.
"""
import importlib.util as _util
import os as _os
import sys as _sys

_mine = _sys.modules[__name__]
_loaded = _sys.modules.get("fasttcm.layers._C")
if _loaded is None:
    _spec = _util.find_spec("fasttcm")
    if _spec is None or not _spec.submodule_search_locations:
        raise ImportError(
            "detectron2 was installed without compiled ops and relies on fasttcm for detectron2._C, but fasttcm "
            "is not importable. Install it (pip install -e <fasttcm checkout>) or install a compiled detectron2."
        )
    _path = _os.path.join(list(_spec.submodule_search_locations)[0], "layers", "_C.py")
    _spec = _util.spec_from_file_location("fasttcm.layers._C", _path)
    _loaded = _util.module_from_spec(_spec)
    _sys.modules["fasttcm.layers._C"] = _loaded
    _spec.loader.exec_module(_loaded)
_sys.modules[__name__] = _loaded
'''


def log(msg):
    print(f"[install_detectron2] {msg}", flush=True)


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def marker_text() -> str:
    return f"{SDIST_SHA256}\nlayout {LAYOUT}\n"


def detectron2_folders(target=None):
    """Folders of the ``detectron2`` package that this run is about: ``target/detectron2`` with ``--target``,
    else wherever this Python imports detectron2 from (site-packages or a source checkout)."""
    if target is not None:
        pkg = Path(target) / "detectron2"
        return [pkg] if pkg.is_dir() else []
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(f) for f in spec.submodule_search_locations]


def compiled_detectron2(target=None):
    """Return the path of a compiled ``detectron2._C`` shared library, or None."""
    for folder in detectron2_folders(target):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            cand = folder / f"_C{suffix}"
            if cand.exists():
                return cand
        for cand in folder.glob("_C*.so"):
            return cand
    return None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def download_sdist(dest: Path) -> Path:
    page_url = f"{index_url()}/{SDIST_NAME}/"
    log(f"looking up {SDIST_FILE} at {page_url}")
    with urllib.request.urlopen(page_url, timeout=60) as r:
        html = r.read().decode("utf-8", "replace")
    links = re.findall(r'href="([^"]+)"', html)
    links = [l for l in links if urllib.parse.urlparse(l).path.endswith("/" + SDIST_FILE)]
    if not links:
        raise SystemExit(f"error: {SDIST_FILE} not listed at {page_url}; download it yourself and pass --sdist PATH")
    url = urllib.parse.urljoin(page_url, links[0]).split("#")[0]
    log(f"downloading {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    with urllib.request.urlopen(url, timeout=300) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f)
    tmp.replace(dest)
    return dest


def find_sdist(explicit) -> Path:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SystemExit(f"error: sdist {path} does not exist")
        return path
    cached = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fasttcm" / SDIST_FILE
    if cached.is_file() and sha256(cached) == SDIST_SHA256:
        log(f"using cached {cached}")
        return cached
    return download_sdist(cached)


def patch_export_init(pkg: Path) -> bool:
    """Replace ``detectron2/export/__init__.py`` under ``pkg``'s parent by :data:`EXPORT_INIT`. Returns True when it
    changed the file, False when it was already patched; refuses a file that is neither detectron2 0.6's nor ours."""
    path = pkg.parent / EXPORT_INIT_PATH
    data = path.read_bytes()
    if data == EXPORT_INIT.encode("utf-8"):
        return False
    digest = hashlib.sha256(data).hexdigest()
    if digest != EXPORT_INIT_ORIGINAL_SHA256:
        raise SystemExit(
            f"error: {path} is not detectron2 0.6's (sha256 {digest}, expected {EXPORT_INIT_ORIGINAL_SHA256}); "
            "refusing to patch it"
        )
    path.write_text(EXPORT_INIT, encoding="utf-8")
    return True


def install_from_sdist(sdist: Path, target: Path):
    digest = sha256(sdist)
    if digest != SDIST_SHA256:
        raise SystemExit(
            f"error: {sdist} has sha256 {digest}, expected {SDIST_SHA256}; refusing to install an unverified detectron2"
        )
    log(f"sha256 verified ({digest[:16]}...)")
    root = f"{SDIST_NAME}-{SDIST_VERSION}/"
    # sdist folder -> installed folder: the package itself and detectron2's three in-package projects
    layout = {"detectron2": "detectron2", **PROJECTS}
    pkg = target / "detectron2"
    if pkg.exists():
        shutil.rmtree(pkg)
    files, found = [], set()
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(root):
                continue
            name = member.name[len(root):]
            src = next((k for k in layout if name.startswith(k + "/")), None)
            if src is None:
                continue
            rel = name[len(src) + 1:]
            if ".." in Path(rel).parts or rel.startswith("/"):
                raise SystemExit(f"error: unsafe path {member.name} in {sdist}")
            found.add(src)
            out = target / layout[src] / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as fsrc, open(out, "wb") as dst:
                shutil.copyfileobj(fsrc, dst)
            files.append(out)
    missing = sorted(set(layout) - found)
    if missing:
        raise SystemExit(f"error: {sdist} has no {', '.join(missing)} folder")
    patch_export_init(pkg)
    (pkg / "_C.py").write_text(SHIM)
    files.append(pkg / "_C.py")
    write_dist_info(target, files + [pkg / MARKER])
    # the marker last: an interrupted run leaves no marker, so the next run installs again
    (pkg / MARKER).write_text(marker_text())
    n_proj = sum(1 for f in files if any(f.is_relative_to(target / d) for d in PROJECTS.values()))
    log(
        f"installed detectron2 {SDIST_VERSION} Python sources ({len(files)} files, {n_proj} of them the "
        f"detectron2.projects packages) into {pkg} without compiled ops; patched {EXPORT_INIT_PATH} for torch 2"
    )


def write_dist_info(target: Path, files):
    for old in target.glob("detectron2-*.dist-info"):
        shutil.rmtree(old)
    info = target / f"detectron2-{SDIST_VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: detectron2\nVersion: {SDIST_VERSION}\n"
        f"Summary: detectron2 {SDIST_VERSION} Python sources from the {SDIST_NAME} sdist, ops supplied by fasttcm\n"
    )
    (info / "INSTALLER").write_text("fasttcm\n")
    (info / "top_level.txt").write_text("detectron2\n")
    rows = [f"{p.relative_to(target).as_posix()},," for p in files]
    rows += [f"{(info / n).relative_to(target).as_posix()},," for n in ("METADATA", "INSTALLER", "top_level.txt", "RECORD")]
    (info / "RECORD").write_text("\n".join(rows) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", default=os.environ.get("FASTTCM_DETECTRON2_SDIST"),
                        help="local path of pb1-detectron2-0.6.tar.gz (default: download from the package index)")
    parser.add_argument("--force", action="store_true", help="reinstall the sdist even when it is already installed")
    parser.add_argument("--target", default=None,
                        help="install into this folder instead of this Python's site-packages (default: site-packages)")
    args = parser.parse_args(argv)

    target = Path(args.target).resolve() if args.target else site_packages()
    so = compiled_detectron2(args.target and target)
    if so is not None and not args.force:
        log(f"path 1: a compiled detectron2 is installed ({so}); keeping it")
        return 0
    marker = target / "detectron2" / MARKER
    current = marker.read_text() if marker.is_file() else None
    if not args.force and current == marker_text():
        log(f"path 2: detectron2 {SDIST_VERSION} from the verified sdist is already installed in {target}")
        return 0
    present = (target / "detectron2").is_dir() if args.target else importlib.util.find_spec("detectron2") is not None
    if present and current is None and not args.force:
        raise SystemExit(
            "error: a detectron2 without compiled ops and not installed by fasttcm is present; uninstall it "
            "(pip uninstall detectron2) or rerun with --force to replace it"
        )
    if current is not None and current != marker_text() and not args.force:
        lines = current.split("\n")
        old = lines[1] if len(lines) > 1 and lines[1].startswith("layout ") else "layout 1"
        log(f"path 2: replacing the copy installed by an older fasttcm ({old}; now layout {LAYOUT})")
    install_from_sdist(find_sdist(args.sdist), target)
    log("path 2: detectron2 from the verified pb1-detectron2 sdist; fasttcm supplies detectron2._C")
    return 0


if __name__ == "__main__":
    sys.exit(main())
