"""Every shipped YAML config loads through fasttcm's safe loader and names registered datasets."""

import pytest
from detectron2.data import DatasetCatalog

import fasttcm.engine  # noqa: F401  (registers fasttcm's config keys, datasets and models)
from conftest import REPO
from fasttcm.engine import load_config

CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    for ds in ("icdar2015", "totaltext", "ctw1500"):
        for mode in ("baseline", "tcm", "fasttcm"):
            assert f"{mode}_R50_{ds}.yaml" in names
    assert {"fasttcm_synthtext_cpu.yaml", "fasttcm_synthaerial_cpu.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(p.parents[1])) for p in CONFIGS])
def test_config_loads_and_uses_registered_datasets(path):
    cfg = load_config(str(path))
    if path.name.startswith("Base-"):
        return
    registered = set(DatasetCatalog.list())
    for name in tuple(cfg.DATASETS.TRAIN) + tuple(cfg.DATASETS.TEST):
        assert name in registered, f"{path.name}: dataset {name} is not registered"
    if "/dota/" in str(path) or "aerial" in path.name:
        assert cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE > 0
        assert len(cfg.MODEL.FASTTCM.PROMPTS) == cfg.MODEL.ROI_HEADS.NUM_CLASSES
    mode = path.name.split("_")[0]
    if mode in ("baseline", "tcm", "fasttcm"):
        assert cfg.MODEL.FASTTCM.MODE == mode


def test_wrong_key_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL:\n  FASTTCM:\n    NO_SUCH_KEY: 1\n")
    with pytest.raises(KeyError, match="bad.yaml.*NO_SUCH_KEY|NO_SUCH_KEY.*bad.yaml"):
        load_config(str(bad))
    with pytest.raises(KeyError, match="opts"):
        load_config(None, ["MODEL.FASTTCM.NOPE", "1"])


def test_unsafe_yaml_is_refused(tmp_path):
    evil = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    evil.write_text(f"OUTPUT_DIR: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(Exception):
        load_config(str(evil))
    assert not marker.exists()


@pytest.mark.parametrize("files,expect", [
    ({"c.yaml": "MODEL:\n  DEVICE: [cpu\n"}, r"c\.yaml: YAML error at line 3, column 1: expected ',' or ']'"),
    ({"c.yaml": ""}, r"c\.yaml: the config file is empty"),
    ({"c.yaml": "# only a comment\n"}, r"c\.yaml: the config file is empty"),
    ({"c.yaml": "- a\n- b\n"}, r"c\.yaml: a config file must be a mapping of keys \(KEY: value\), got a list"),
    ({"c.yaml": "SOLVER:\n  BASE_LR: abc\n"},
     r"c\.yaml: key SOLVER\.BASE_LR: expected float \(default 0\.001\), got str 'abc'"),
    ({"c.yaml": "_BASE_: b.yaml\n", "b.yaml": "SOLVER:\n  STEPS: 5\n"},
     r"b\.yaml: key SOLVER\.STEPS: expected tuple \(default \(30000,\)\), got int 5"),  # the file that set it
    ({"c.yaml": "_BASE_: b.yaml\nSOLVER:\n  BASE_LR: 0.1\n", "b.yaml": "MODEL:\n  NOPE: 1\n"},
     r"b\.yaml: Non-existent config key: MODEL\.NOPE"),
    ({"c.yaml": "_BASE_: missing.yaml\n"}, r"c\.yaml: _BASE_ .*missing\.yaml not found"),
    ({"c.yaml": "_BASE_: b.yaml\n", "b.yaml": "_BASE_: c.yaml\n"},
     r"b\.yaml: _BASE_ chain forms a cycle: .*c\.yaml -> .*b\.yaml -> .*c\.yaml"),
    ({"c.yaml": "_BASE_: [a.yaml]\n"}, r"c\.yaml: _BASE_ must be one file name"),
    ({"c.yaml": b"MODEL:\n  DEVICE: \xff\n"}, r"c\.yaml: not UTF-8"),
])
def test_config_errors_name_the_file_and_key(tmp_path, files, expect):
    for name, text in files.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises((ValueError, FileNotFoundError), match=expect):
        load_config(str(tmp_path / "c.yaml"))


def test_opts_errors_name_the_key():
    from fasttcm.engine.defaults import ConfigError

    with pytest.raises(ConfigError, match=r"command-line opts: key SOLVER\.BASE_LR: expected float"):
        load_config(None, ["SOLVER.BASE_LR", "abc"])
    with pytest.raises(ConfigError, match="odd number of words"):
        load_config(None, ["SOLVER.BASE_LR"])


def test_file_without_version_loads_quietly(tmp_path, caplog):
    import logging

    cfg_file = tmp_path / "user.yaml"
    cfg_file.write_text("SOLVER:\n  BASE_LR: 0.5\n")
    with caplog.at_level(logging.WARNING):
        cfg = load_config(str(cfg_file))
    assert cfg.SOLVER.BASE_LR == 0.5 and cfg.VERSION == 2
    assert not [r for r in caplog.records if "VERSION" in r.getMessage()]


def test_train_net_reports_a_broken_config_in_one_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("SOLVER:\n  BASE_LR: [\n")
    repo = REPO
    proc = subprocess.run([sys.executable, "tools/train_net.py", "--config-file", str(bad)], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: YAML error at line")
    assert "Traceback" not in proc.stderr
