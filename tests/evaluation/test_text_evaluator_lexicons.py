"""TextDetEvaluator with lexicons from the config: the full end-to-end row, one submission per lexicon."""
import uuid
import zipfile

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Instances

import fasttcm.engine  # noqa: F401  (config keys, registrations)
from fasttcm.engine import load_config
from fasttcm.engine.trainer import build_evaluator_for_dataset

QUADS = {"HELLO": [0, 0, 40, 0, 40, 10, 0, 10], "WORLD": [50, 0, 90, 0, 90, 10, 50, 10]}


@pytest.fixture
def dataset(tmp_path):
    name = f"test_lexicon_ds_{uuid.uuid4().hex[:8]}"
    recs = [{"file_name": "img_1.jpg", "image_id": "img_1", "height": 100, "width": 200,
             "annotations": [{"segmentation": [q], "text": t, "iscrowd": 0} for t, q in QUADS.items()]}]
    DatasetCatalog.register(name, lambda: recs)
    MetadataCatalog.get(name).set(thing_classes=["text"], evaluator_type="icdar15")
    (tmp_path / "strong").mkdir()
    (tmp_path / "strong" / "voc_img_1.txt").write_text("HELLO\nWORLD\nHOUSE\n")
    (tmp_path / "weak.txt").write_text("HELLO\nHOUSE\n")
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _outputs(texts):
    inst = Instances((100, 200))
    inst.pred_polygons = [np.reshape(q, (4, 2)).astype(np.float32) for q in QUADS.values()]
    inst.scores = torch.tensor([0.9, 0.8])
    inst.texts = texts
    return [{"instances": inst}]


def test_lexicons_from_config_give_the_row_and_submissions(dataset, tmp_path):
    cfg = load_config(None, ["TEST.FASTTCM.LEXICON_STRONG", str(tmp_path / "strong"),
                             "TEST.FASTTCM.LEXICON_WEAK", str(tmp_path / "weak.txt")])
    ev = build_evaluator_for_dataset(cfg, dataset, str(tmp_path / "out"))
    ev.reset()
    ev.process([{"image_id": "img_1"}], _outputs(["HELL0", "W0RLD"]))
    res = ev.evaluate()
    assert res["text_det"]["hmean"] == pytest.approx(100.0)
    assert res["text_e2e"]["hmean"] == pytest.approx(0.0)  # both misread
    assert res["text_e2e_strong"]["hmean"] == pytest.approx(100.0)  # both one edit from a Strong word
    # Weak has no WORLD: W0RLD is two edits from HOUSE and HELLO, so it is dropped; HELL0 -> HELLO
    assert res["text_e2e_weak"] == pytest.approx({"precision": 100.0, "recall": 50.0, "hmean": 200 / 3})
    with zipfile.ZipFile(tmp_path / "out" / "text_results_strong.zip") as z:
        assert z.read("res_img_1.txt").decode().splitlines() == ["0,0,40,0,40,10,0,10,HELLO",
                                                                  "50,0,90,0,90,10,50,10,WORLD"]
    with zipfile.ZipFile(tmp_path / "out" / "text_results_weak.zip") as z:
        assert z.read("res_img_1.txt").decode().splitlines() == ["0,0,40,0,40,10,0,10,HELLO"]


def test_no_lexicon_settings_no_lexicon_rows(dataset, tmp_path):
    ev = build_evaluator_for_dataset(load_config(None), dataset, str(tmp_path / "out"))
    ev.reset()
    ev.process([{"image_id": "img_1"}], _outputs(["HELLO", "WORLD"]))
    res = ev.evaluate()
    assert set(res) == {"text_det", "text_e2e"}
    assert not list((tmp_path / "out").glob("text_results_*"))
