"""The evaluation and merge command lines run without torch or detectron2 (each in a fresh interpreter, on small
files), and fasttcm's registration contract: `import fasttcm` is light, the subpackages register what they own."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
HEAVY = ("torch", "torchvision", "detectron2", "cv2")


def _run(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter at the repository root; it must print one JSON line last."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=str(REPO), env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


_CLI = """
import json, runpy, sys
sys.argv = {argv!r}
out = {{}}
try:
    {call}
except SystemExit as e:
    out["rc"] = e.code
print()
print(json.dumps(dict(out, heavy=[m for m in {heavy!r} if m in sys.modules])))
"""


def _cli(tmp_path, argv, script):
    call = f"runpy.run_path({str(REPO / script)!r}, run_name='__main__')"
    return _run(_CLI.format(argv=argv, call=call, heavy=HEAVY), tmp_path)


def _text_files(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "det").mkdir()
    (tmp_path / "gt" / "gt_img_1.txt").write_text("0,0,10,0,10,10,0,10,Word\n")
    (tmp_path / "det" / "res_img_1.txt").write_text('0,0,10,0,10,10,0,10, "word" \n')
    (tmp_path / "tgt").mkdir()
    (tmp_path / "tdet").mkdir()
    (tmp_path / "tgt" / "0000001.txt").write_text("0,0,10,0,10,10,0,10,####Word\n")
    (tmp_path / "tdet" / "0000001.txt").write_text("0,0,10,0,10,10,0,10,#### word \n")


def _dota_files(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "P1.txt").write_text("0 0 10 0 10 10 0 10 plane 0\n")
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "Task1_plane.txt").write_text("P1__1__0___0 0.9 0 0 10 0 10 10 0 10\n")


def test_text_cli_loads_neither_torch_nor_detectron2(tmp_path):
    _text_files(tmp_path)
    for protocol, gt, det in (("icdar15", "gt", "det"), ("totaltext", "tgt", "tdet")):
        out = tmp_path / f"{protocol}.json"
        argv = ["x", "--protocol", protocol, "--gt", str(tmp_path / gt), "--det", str(tmp_path / det), "--json",
                str(out)]
        r = _cli(tmp_path, argv, script="tools/evaluate_text.py")
        assert r["rc"] == 0 and r["heavy"] == []
        assert json.loads(out.read_text())["e2e"]["hmean"] == 1.0  # the quoted / padded spelling was read


def test_dota_cli_and_merge_load_neither_torch_nor_detectron2(tmp_path):
    _dota_files(tmp_path)
    r = _run(_CLI.format(argv=["x", str(tmp_path / "patches"), str(tmp_path / "merged")],
                         call=f"runpy.run_path({str(REPO / 'tools/dota_merge.py')!r}, run_name='__main__')",
                         heavy=HEAVY), tmp_path)
    assert r["rc"] == 0 and r["heavy"] == []
    out = tmp_path / "r.json"
    argv = ["x", "--det", str(tmp_path / "merged" / "Task1_{:s}.txt"), "--gt", str(tmp_path / "lab"), "--json",
            str(out)]
    r = _cli(tmp_path, argv, script="tools/evaluate_dota.py")
    assert r["rc"] == 0 and r["heavy"] == []
    assert json.loads(out.read_text())["classes"]["plane"]["ap"] == pytest.approx(1.0)


def test_import_fasttcm_is_light_and_lazy_attributes_register_everything(tmp_path):
    r = _run(f"""
        import json, sys
        import fasttcm, fasttcm.evaluation, fasttcm.data, fasttcm.data.dota
        light = [m for m in {HEAVY!r} if m in sys.modules]
        version = fasttcm.__version__
        cfg_fn = fasttcm.add_fasttcm_config  # first use: imports and registers everything
        from detectron2.data import DatasetCatalog
        from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY
        print(json.dumps(dict(light=light, version=version, name=cfg_fn.__name__,
                              backbone="build_fasttcm_fpn_backbone" in BACKBONE_REGISTRY._obj_map,
                              meta="TextDetector" in META_ARCH_REGISTRY._obj_map,
                              data="totaltext_test" in DatasetCatalog.list(),
                              ops=fasttcm.detectron2_ops_source())))
    """, tmp_path)
    assert r["light"] == [] and r["version"] == "0.1.0" and r["name"] == "add_fasttcm_config"
    assert r["backbone"] and r["meta"] and r["data"] and "detectron2._C" in r["ops"]


def test_subpackages_register_what_they_own(tmp_path):
    r = _run("""
        import json, sys
        from detectron2.data import DatasetCatalog
        from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

        def state():
            return dict(backbone="build_fasttcm_backbone" in BACKBONE_REGISTRY._obj_map,
                        meta="FastTCMRotatedRCNN" in META_ARCH_REGISTRY._obj_map,
                        data="dota_v1_val" in DatasetCatalog.list())

        import fasttcm.modeling
        after_modeling = state()
        import fasttcm.data.datasets
        print(json.dumps(dict(modeling=after_modeling, datasets=state(), c="detectron2._C" in sys.modules)))
    """, tmp_path)
    assert r["modeling"] == {"backbone": True, "meta": True, "data": False}
    assert r["datasets"] == {"backbone": True, "meta": True, "data": True}
    assert r["c"]  # detectron2._C was supplied (or compiled) before detectron2.layers loaded
