"""TextDetEvaluator (Detectron2 DatasetEvaluator) on tiny registered fake datasets with fake model outputs."""
import json
import uuid
import zipfile

import numpy as np
import pytest
import torch

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Instances, RotatedBoxes
from fasttcm.evaluation.text_evaluator import TextDetEvaluator


def rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def anno(points, text, iscrowd=0):
    return {"segmentation": [[float(v) for p in points for v in p]], "text": text, "iscrowd": iscrowd,
            "category_id": 0}


@pytest.fixture
def register():
    names = []

    def _register(records, **meta):
        name = f"test_text_eval_fake_{uuid.uuid4().hex[:8]}"
        DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).set(thing_classes=["text"], **meta)
        names.append(name)
        return name

    yield _register
    for n in names:
        DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)


def instances(polygons=None, scores=(), texts=None, boxes=None):
    inst = Instances((100, 200))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    if polygons is not None:
        inst.pred_polygons = polygons
    if boxes is not None:
        inst.pred_boxes = RotatedBoxes(torch.tensor(boxes, dtype=torch.float32))
    if texts is not None:
        inst.texts = texts
    return {"instances": inst}


IC15_RECORDS = [
    {"file_name": "/nonexistent/img_1.jpg", "image_id": "img_1", "height": 100, "width": 200,
     "annotations": [anno(rect(0, 0, 10, 10), "Hello"), anno(rect(20, 0, 30, 10), "whatever", iscrowd=1),
                     anno(rect(40, 0, 50, 10), "World")]},
    {"file_name": "/nonexistent/img_2.jpg", "image_id": 2, "height": 100, "width": 200,
     "annotations": [anno(rect(0, 0, 20, 10), "Foo")]},
]


def _run(ev, name):
    ev.reset()
    ev.process(
        [{"image_id": "img_1", "file_name": "img_1.jpg"}],
        [instances(
            polygons=[np.array(rect(0, 0, 10, 10), np.float32),  # exact, correct text
                      torch.tensor(rect(20, 0, 30, 10), dtype=torch.float32),  # on the don't-care region
                      np.array(rect(60, 0, 70, 10), np.float64).reshape(-1),  # flat: a false positive
                      np.array(rect(40, 0, 50, 10), np.float32)],  # exact but below the threshold
            scores=[0.9, 0.8, 0.7, 0.3], texts=["hello", "x", "foo", "world"])],
    )
    hexagon = torch.tensor([[0, 0], [10, 0], [20, 0], [20, 10], [10, 10], [0, 10]], dtype=torch.float32)
    ev.process([{"image_id": 2, "file_name": "img_2.jpg"}],
               [instances(polygons=[hexagon], scores=[0.95], texts=["FOO"])])
    return ev.evaluate()


def test_icdar15_evaluator_numbers_files_and_zip(register, tmp_path):
    name = register(IC15_RECORDS, evaluator_type="icdar15")
    ev = TextDetEvaluator(name, output_dir=str(tmp_path))
    res = _run(ev, name)
    # care GT 3 (Hello, World, Foo); care det 3 (the one on the don't-care region is ignored); 2 matches, both read
    assert list(res) == ["text_det", "text_e2e"]
    for task in ("text_det", "text_e2e"):
        assert res[task] == pytest.approx({"precision": 200 / 3, "recall": 200 / 3, "hmean": 200 / 3})
    folder = tmp_path / "text_results"
    assert sorted(p.name for p in folder.iterdir()) == ["res_img_1.txt", "res_img_2.txt"]
    assert (folder / "res_img_1.txt").read_text().splitlines() == [
        "0,0,10,0,10,10,0,10,hello", "20,0,30,0,30,10,20,10,x", "60,0,70,0,70,10,60,10,foo"]
    # the 6-point polygon became its minimum rotated rectangle
    (line,) = (folder / "res_img_2.txt").read_text().splitlines()
    pts = np.array(line.split(",")[:8], float).reshape(4, 2)
    assert sorted(map(tuple, pts)) == [(0, 0), (0, 10), (20, 0), (20, 10)] and line.endswith(",FOO")
    with zipfile.ZipFile(tmp_path / "text_results.zip") as z:
        assert sorted(z.namelist()) == ["res_img_1.txt", "res_img_2.txt"]
        assert z.read("res_img_1.txt").decode() == (folder / "res_img_1.txt").read_text()
    data = json.loads((tmp_path / "text_eval.json").read_text())
    assert data["dataset"] == name and data["protocol"] == "icdar15" and data["score_threshold"] == 0.5
    assert data["gt_source"] == f"dataset dicts of {name}" and data["word_spotting"] is False
    assert (data["det_only"]["care_gt"], data["det_only"]["care_det"], data["det_only"]["matched"]) == (3, 3, 2)
    # the written zip, evaluated by the file-based protocol, gives the same numbers
    from fasttcm.evaluation.text_eval import evaluate

    gt = {r["image_id"]: [(np.reshape(a["segmentation"][0], (-1, 2)), "###" if a["iscrowd"] else a["text"])
                          for a in r["annotations"]] for r in IC15_RECORDS}
    again = evaluate(gt, str(tmp_path / "text_results.zip"), "icdar15")
    assert again["det_only"]["hmean"] == pytest.approx(2 / 3) and again["e2e"]["hmean"] == pytest.approx(2 / 3)


def test_threshold_sweep_is_separate_and_labelled(register, tmp_path, caplog):
    name = register(IC15_RECORDS, evaluator_type="icdar15")
    ev = TextDetEvaluator(name, output_dir=str(tmp_path), threshold_sweep=[0.2, 0.5, 0.92])
    with caplog.at_level("INFO", logger="fasttcm.evaluation.text_evaluator"):
        res = _run(ev, name)
    assert res["text_det"]["hmean"] == pytest.approx(200 / 3)  # the main number is still at 0.5
    # at 0.2 the exact "World" detection is kept: P 3/4, R 3/3
    assert res["text_det_threshold_sweep"] == pytest.approx(
        {"threshold": 0.2, "precision": 75.0, "recall": 100.0, "hmean": 600 / 7})
    assert "OPTIMISTIC" in caplog.text
    # files hold the detections at the main threshold only
    assert len((tmp_path / "text_results" / "res_img_1.txt").read_text().splitlines()) == 3


def test_totaltext_rotated_boxes_fallback_without_texts(register, tmp_path):
    records = [{"file_name": "/nonexistent/img3.jpg", "image_id": "img3", "height": 100, "width": 200,
                "annotations": [anno(rect(10, 10, 50, 30), "Word"), anno(rect(60, 10, 80, 30), "###", 1)]}]
    name = register(records, evaluator_type="totaltext")
    ev = TextDetEvaluator(name, output_dir=str(tmp_path), distributed=False)
    ev.process([{"image_id": "img3"}],
               [instances(boxes=[[30, 20, 40, 20, 0], [70, 20, 20, 20, 90], [150, 50, 10, 10, 30]],
                          scores=[0.9, 0.9, 0.6])])
    res = ev.evaluate()
    assert list(res) == ["text_det"]  # no texts: no end-to-end result
    # care GT 1; care det 2 (box 2 lies on the don't-care region); 1 match
    assert res["text_det"] == pytest.approx({"precision": 50.0, "recall": 100.0, "hmean": 200 / 3})
    assert sorted(p.name for p in (tmp_path / "text_results").iterdir()) == ["0000003.txt"]
    assert not (tmp_path / "text_results.zip").exists()
    first = (tmp_path / "text_results" / "0000003.txt").read_text().splitlines()[0]
    assert first == "10,10,50,10,50,30,10,30,####"
    data = json.loads((tmp_path / "text_eval.json").read_text())
    assert data["word_spotting"] is True  # Total-Text default


def test_gt_from_official_files_and_unknown_images(register, tmp_path, caplog):
    gt_dir = tmp_path / "gts"
    gt_dir.mkdir()
    (gt_dir / "gt_img_1.txt").write_bytes("\ufeff0,0,10,0,10,10,0,10,Hello\r\n".encode())
    (gt_dir / "gt_img_2.txt").write_bytes(b"0,0,10,0,10,10,0,10,Never seen\n")
    # the dataset dicts disagree with the files on purpose: the files must win
    name = register([{"file_name": "x/img_1.jpg", "image_id": "img_1", "annotations": []}],
                    evaluator_type="icdar15", gt_dir=str(gt_dir), gt_format="icdar15")
    ev = TextDetEvaluator(name, output_dir=str(tmp_path / "out"))
    ev.process([{"image_id": "img_1"}, {"image_id": "img_7"}],
               [instances(polygons=[np.array(rect(0, 0, 10, 10))], scores=[0.9], texts=["HELLO"]),
                instances(polygons=[np.array(rect(0, 0, 10, 10))], scores=[0.9], texts=["x"])])
    with caplog.at_level("WARNING"):
        res = ev.evaluate()
    assert res["text_det"] == pytest.approx({"precision": 100.0, "recall": 50.0, "hmean": 200 / 3})
    assert res["text_e2e"] == pytest.approx({"precision": 100.0, "recall": 50.0, "hmean": 200 / 3})
    data = json.loads((tmp_path / "out" / "text_eval.json").read_text())
    assert data["gt_source"] == f"official files {gt_dir}"
    assert data["warnings"]["unknown_det_images"] == ["7"] and data["gt_images_without_output"] == 1
    assert "received no model output" in caplog.text and "which has no ground truth" in caplog.text


def test_invalid_and_degenerate_predictions_are_counted(register, tmp_path, caplog):
    records = [{"file_name": "a/0000001.png", "image_id": "0000001",
                "annotations": [anno(rect(0, 0, 10, 10), "Word")]}]
    name = register(records, evaluator_type="ctw1500")
    ev = TextDetEvaluator(name, output_dir=str(tmp_path))
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], float)
    ev.process([{"image_id": "0000001"}],
               [instances(polygons=[bow, np.array([[1, 1], [2, 2]], float)], scores=[0.9, 0.9], texts=["a", "b"])])
    with caplog.at_level("WARNING", logger="fasttcm.evaluation.text_evaluator"):
        res = ev.evaluate()
    assert "1 invalid predicted polygon(s) repaired, 1 dropped" in caplog.text
    data = json.loads((tmp_path / "text_eval.json").read_text())
    assert (data["predictions_repaired"], data["predictions_dropped"]) == (1, 1)
    assert data["protocol"] == "ctw1500" and data["word_spotting"] is False
    # the written polygon (largest triangle of the bow-tie, area 25) is valid: nothing left to repair at evaluation
    assert data["warnings"]["det_polygons_repaired"] == 0
    assert res["text_det"]["precision"] == 0.0  # IoU 25/100


def test_missing_protocol_is_an_error(register):
    name = register([])
    with pytest.raises(ValueError, match="no evaluator_type"):
        TextDetEvaluator(name)
    assert TextDetEvaluator(name, protocol="icdar2015")._protocol == "icdar15"


def test_real_icdar2015_registered_dataset(shared_data, tmp_path):
    """The loader's registration (metadata gt_dir + gt_format) and the evaluator agree on the real sample."""
    from fasttcm.data.datasets.text import register_text_dataset

    name = f"test_text_eval_ic15_{uuid.uuid4().hex[:8]}"
    register_text_dataset(name, str(shared_data / "icdar2015/ch4_training_images"),
                          str(shared_data / "icdar2015/ch4_training_localization_transcription_gt"), fmt="icdar15")
    try:
        ev = TextDetEvaluator(name, output_dir=str(tmp_path))
        ev.reset()
        for rec in DatasetCatalog.get(name):
            polys = [np.reshape(a["segmentation"][0], (-1, 2)) for a in rec["annotations"]]
            ev.process([{"image_id": rec["image_id"], "file_name": rec["file_name"]}],
                       [instances(polygons=polys, scores=[1.0] * len(polys),
                                  texts=[a["text"] for a in rec["annotations"]])])
        res = ev.evaluate()
        assert res["text_det"] == pytest.approx({"precision": 100.0, "recall": 100.0, "hmean": 100.0})
        assert res["text_e2e"] == pytest.approx({"precision": 100.0, "recall": 100.0, "hmean": 100.0})
        data = json.loads((tmp_path / "text_eval.json").read_text())
        assert data["gt_source"].startswith("official files ")
        assert (data["det_only"]["care_gt"], data["det_only"]["care_det"]) == (21, 21)
        with zipfile.ZipFile(tmp_path / "text_results.zip") as z:
            assert sorted(z.namelist()) == sorted(f"res_img_{i}.txt" for i in range(1, 11))
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
