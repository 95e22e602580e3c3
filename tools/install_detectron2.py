#!/usr/bin/env python
"""Install Detectron2 for fasttcm, the way DESIGN.md §2 states.

1. A detectron2 whose compiled ops (``detectron2._C`` as a shared library) are importable is kept as it is.
2. Otherwise the PyPI sdist ``pb1-detectron2==0.6`` (byte-identical Python files to detectron2's v0.6 tag, but no
   C++/CUDA sources) is fetched, verified against a pinned sha256, and only its ``detectron2/`` package is copied
   into site-packages, with a ``detectron2-0.6.dist-info`` so pip can list and uninstall it. No extension is built
   and no other top-level folder of the sdist (it also packs ``tools/``) lands in site-packages. A small
   ``detectron2/_C.py`` is written that loads fasttcm's PyTorch implementations of the ops.

Idempotent: a second run with nothing to do takes well under a second. Offline: pass ``--sdist PATH`` (or set
``FASTTCM_DETECTRON2_SDIST``) to a local copy of the tarball; downloads are cached in ``~/.cache/fasttcm``.
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


def compiled_detectron2():
    """Return the path of a compiled ``detectron2._C`` shared library, or None."""
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            cand = Path(folder) / f"_C{suffix}"
            if cand.exists():
                return cand
        for cand in Path(folder).glob("_C*.so"):
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


def install_from_sdist(sdist: Path, target: Path):
    digest = sha256(sdist)
    if digest != SDIST_SHA256:
        raise SystemExit(
            f"error: {sdist} has sha256 {digest}, expected {SDIST_SHA256}; refusing to install an unverified detectron2"
        )
    log(f"sha256 verified ({digest[:16]}...)")
    prefix = f"{SDIST_NAME}-{SDIST_VERSION}/detectron2/"
    pkg = target / "detectron2"
    if pkg.exists():
        shutil.rmtree(pkg)
    files = []
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.name.startswith(prefix) or not member.isfile():
                continue
            rel = member.name[len(prefix):]
            if ".." in Path(rel).parts or rel.startswith("/"):
                raise SystemExit(f"error: unsafe path {member.name} in {sdist}")
            out = pkg / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            files.append(out)
    (pkg / "_C.py").write_text(SHIM)
    (pkg / MARKER).write_text(SDIST_SHA256 + "\n")
    files += [pkg / "_C.py", pkg / MARKER]
    write_dist_info(target, files)
    log(f"installed detectron2 {SDIST_VERSION} Python sources ({len(files)} files) into {pkg} without compiled ops")


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
    args = parser.parse_args(argv)

    so = compiled_detectron2()
    if so is not None and not args.force:
        log(f"path 1: a compiled detectron2 is installed ({so}); keeping it")
        return 0
    target = site_packages()
    marker = target / "detectron2" / MARKER
    if not args.force and marker.is_file() and marker.read_text().strip() == SDIST_SHA256:
        log(f"path 2: detectron2 {SDIST_VERSION} from the verified sdist is already installed in {target}")
        return 0
    if importlib.util.find_spec("detectron2") is not None and not marker.is_file() and not args.force:
        raise SystemExit(
            "error: a detectron2 without compiled ops and not installed by fasttcm is present; uninstall it "
            "(pip uninstall detectron2) or rerun with --force to replace it"
        )
    install_from_sdist(find_sdist(args.sdist), target)
    log("path 2: detectron2 from the verified pb1-detectron2 sdist; fasttcm supplies detectron2._C")
    return 0


if __name__ == "__main__":
    sys.exit(main())
