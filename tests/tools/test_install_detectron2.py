"""tools/install_detectron2.py, path 2 (the verified pb1-detectron2 sdist), installed into a temporary --target.

Needs the sdist: $FASTTCM_DETECTRON2_SDIST or the installer's download cache (~/.cache/fasttcm), which `make setup`
fills; skips otherwise. The installed copy is then imported in a fresh process with the target first on the path.
"""
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
SCRIPT = REPO / "tools" / "install_detectron2.py"

_spec = importlib.util.spec_from_file_location("install_detectron2_under_test", SCRIPT)
inst = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inst)


@pytest.fixture(scope="module")
def sdist():
    env = os.environ.get("FASTTCM_DETECTRON2_SDIST")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fasttcm" / inst.SDIST_FILE
    path = Path(env) if env else cache
    if not path.is_file() or inst.sha256(path) != inst.SDIST_SHA256:
        pytest.skip(f"the verified {inst.SDIST_FILE} is not at {path} (run `make setup` or set FASTTCM_DETECTRON2_SDIST)")
    return path


@pytest.fixture(scope="module")
def installed(sdist, tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    _install(target, sdist)
    return target


def _install(target, sdist, *extra):
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--target", str(target), "--sdist", str(sdist), *extra],
        capture_output=True, text=True, timeout=300,
    )
    return res


def _python(target, code, tmp_path, timeout=300):
    """Run ``code`` in a fresh interpreter importing detectron2 from ``target`` and fasttcm from this checkout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(REPO)]), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def _tree(root):
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_as_detectron2_setup_installs_it(installed):
    pkg = installed / "detectron2"
    for name in ("point_rend", "deeplab", "panoptic_deeplab"):
        assert (pkg / "projects" / name / "__init__.py").is_file(), name
    assert (pkg / "model_zoo" / "configs" / "Base-RCNN-FPN.yaml").is_file()
    assert sorted(p.name for p in installed.iterdir()) == ["detectron2", "detectron2-0.6.dist-info"]  # no tools/
    record = (installed / "detectron2-0.6.dist-info" / "RECORD").read_text().split()
    listed = {r.split(",")[0] for r in record}
    on_disk = {p.relative_to(installed).as_posix() for p in installed.rglob("*") if p.is_file()}
    assert listed == on_disk  # pip uninstall removes everything, projects included
    assert (pkg / inst.MARKER).read_text() == inst.marker_text()
    assert (pkg / "export" / "__init__.py").read_text() == inst.EXPORT_INIT


def test_projects_and_export_import_in_a_fresh_process(installed, tmp_path):
    res = _python(installed, """
        import sys, types, torch
        import detectron2
        assert detectron2.__file__.startswith(TARGET), detectron2.__file__
        import detectron2.projects.point_rend as point_rend
        import detectron2.projects.deeplab as deeplab
        from detectron2.config import get_cfg
        cfg = get_cfg()
        point_rend.add_pointrend_config(cfg)
        deeplab.add_deeplab_config(cfg)
        assert cfg.MODEL.POINT_HEAD.NUM_CLASSES == 80 and cfg.SOLVER.POLY_LR_POWER == 0.9
        # panoptic_deeplab needs panopticapi (detectron2's optional dependency, not on PyPI): with a stand-in for
        # its one function, the project itself imports
        stub = types.ModuleType("panopticapi"); stub.utils = types.ModuleType("panopticapi.utils")
        stub.utils.rgb2id = lambda color: color
        sys.modules.update({"panopticapi": stub, "panopticapi.utils": stub.utils})
        import detectron2.projects.panoptic_deeplab as pdl
        assert hasattr(pdl, "PanopticDeepLab")

        from detectron2.export import TracingAdapter, scripting_with_instances, dump_torchscript_IR
        import detectron2.utils.analysis  # imports detectron2.export
        try:
            from detectron2.export import Caffe2Tracer
        except ImportError as e:
            assert "caffe2" in str(e) and "TracingAdapter" in str(e), e
        else:
            raise AssertionError("Caffe2Tracer imported without caffe2")

        from detectron2.structures import Boxes, Instances

        class Model(torch.nn.Module):
            def forward(self, x):
                inst = Instances((x.shape[-2], x.shape[-1]))
                inst.pred_boxes = Boxes(x.flatten(1)[:, :4] * 2)
                inst.scores = x.flatten(1).sum(1)
                return [{"instances": inst}]

        model, x = Model().eval(), torch.rand(3, 2, 2)
        adapter = TracingAdapter(model, x)
        traced = torch.jit.trace(adapter, adapter.flattened_inputs)
        out = adapter.outputs_schema(traced(*adapter.flattened_inputs))[0]["instances"]
        ref = model(x)[0]["instances"]
        assert torch.equal(out.pred_boxes.tensor, ref.pred_boxes.tensor) and torch.equal(out.scores, ref.scores)
        print("OK", detectron2.__file__)
    """.replace("TARGET", repr(str(installed))), tmp_path)
    assert res.returncode == 0, res.stderr[-4000:]
    assert f"OK {installed}" in res.stdout


def test_second_run_is_a_no_op(installed, sdist):
    before = _tree(installed)
    res = _install(installed, sdist)
    assert res.returncode == 0, res.stderr
    assert "already installed" in res.stdout
    assert _tree(installed) == before


def _original_export_init(sdist):
    with tarfile.open(sdist, "r:gz") as tar:
        return tar.extractfile(f"{inst.SDIST_NAME}-{inst.SDIST_VERSION}/{inst.EXPORT_INIT_PATH}").read()


def test_an_older_layout_is_replaced(sdist, tmp_path):
    res = _install(tmp_path, sdist)
    assert res.returncode == 0, res.stderr
    pkg = tmp_path / "detectron2"
    # what the previous installer (layout 1) left: no projects, the sdist's export/__init__.py, only the sha256
    for name in ("point_rend", "deeplab", "panoptic_deeplab"):
        shutil.rmtree(pkg / "projects" / name)
    (pkg / "export" / "__init__.py").write_bytes(_original_export_init(sdist))
    (pkg / inst.MARKER).write_text(inst.SDIST_SHA256 + "\n")
    res = _install(tmp_path, sdist)
    assert res.returncode == 0, res.stderr
    assert "older fasttcm (layout 1; now layout 2)" in res.stdout
    assert (pkg / "projects" / "point_rend" / "__init__.py").is_file()
    assert (pkg / "export" / "__init__.py").read_text() == inst.EXPORT_INIT
    assert (pkg / inst.MARKER).read_text() == inst.marker_text()


def test_a_foreign_detectron2_is_refused_and_a_compiled_one_kept(sdist, tmp_path):
    foreign = tmp_path / "foreign"
    (foreign / "detectron2").mkdir(parents=True)
    (foreign / "detectron2" / "__init__.py").write_text("")
    res = _install(foreign, sdist)
    assert res.returncode != 0 and "not installed by fasttcm" in res.stderr
    assert sorted(p.name for p in foreign.rglob("*")) == ["__init__.py", "detectron2"]  # left alone
    compiled = tmp_path / "compiled"
    (compiled / "detectron2").mkdir(parents=True)
    so = compiled / "detectron2" / "_C.cpython-311-x86_64-linux-gnu.so"
    so.write_bytes(b"")
    res = _install(compiled, sdist)
    assert res.returncode == 0 and "path 1" in res.stdout and str(so) in res.stdout
    assert sorted(p.name for p in compiled.rglob("*")) == sorted(["detectron2", so.name])  # nothing installed


def test_export_patch_is_idempotent_and_checks_what_it_replaces(sdist, tmp_path):
    pkg = tmp_path / "detectron2"
    (pkg / "export").mkdir(parents=True)
    init = pkg / "export" / "__init__.py"
    original = _original_export_init(sdist)
    init.write_bytes(original)
    assert hashlib.sha256(original).hexdigest() == inst.EXPORT_INIT_ORIGINAL_SHA256
    assert inst.patch_export_init(pkg) is True
    assert init.read_text() == inst.EXPORT_INIT
    assert inst.patch_export_init(pkg) is False  # applying it again changes nothing
    assert init.read_text() == inst.EXPORT_INIT
    init.write_bytes(original + b"# edited\n")
    with pytest.raises(SystemExit, match="is not detectron2 0.6's"):
        inst.patch_export_init(pkg)
    assert init.read_bytes() == original + b"# edited\n"


def test_export_patch_reraises_import_errors_other_than_caffe2(installed, tmp_path):
    # the patch hides only a missing caffe2: any other import error of the Caffe2 API still surfaces
    res = _python(installed, """
        import builtins
        real = builtins.__import__
        def fake(name, *a, **k):
            if name == "caffe2.proto":
                raise ImportError("broken dependency", name="protobuf")
            return real(name, *a, **k)
        builtins.__import__ = fake
        try:
            import detectron2.export
        except ImportError as e:
            print("RAISED", e.name)
    """, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "RAISED protobuf" in res.stdout
