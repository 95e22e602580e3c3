"""Every shipped YAML config loads through fasttcm's safe loader and names registered datasets."""
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog

import fasttcm.engine  # noqa: F401  (registers fasttcm's config keys, datasets and models)
from fasttcm.engine import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


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
