"""Multi-process runs on a machine without GPUs: ``fasttcm.engine.launch`` starts CPU workers on gloo.

* ``tools/train_net.py --num-gpus 2`` trains a tiny model in two processes: the loss falls, rank 0 alone writes
  ``metrics.json`` and the checkpoints;
* the text and DOTA evaluators, fed each rank's share of the same predictions, give exactly the single-process
  numbers and write each submission file once.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO


# ------------------------------------------------------------------------------------------- evaluators --
def _text_outputs(d, rng):
    """Predictions for one synthetic text image: jittered GT polygons (some with corrupted text) + a false one."""
    from detectron2.structures import Instances

    from fasttcm.structures.polygons import PolygonList

    polys, scores, texts = [], [], []
    for a in d["annotations"]:
        if rng.random() < 0.15:
            continue  # missed word
        p = np.asarray(a["segmentation"][0], dtype=np.float32).reshape(-1, 2)
        polys.append(p + rng.normal(0, 1.5, p.shape).astype(np.float32))
        scores.append(float(rng.uniform(0.3, 1.0)))
        t = a["text"]
        texts.append(t if rng.random() < 0.7 else t[::-1] + "x")
    polys.append(np.array([[5, 5], [40, 5], [40, 20], [5, 20]], np.float32))
    scores.append(0.9)
    texts.append("noise")
    inst = Instances((d["height"], d["width"]))
    inst.pred_polygons = PolygonList(polys)
    inst.scores = torch.tensor(scores)
    inst.pred_classes = torch.zeros(len(polys), dtype=torch.int64)
    inst.texts = texts
    return inst


def _dota_outputs(d, rng):
    from detectron2.structures import Instances, RotatedBoxes

    boxes, scores, classes = [], [], []
    for a in d["annotations"]:
        b = np.asarray(a["bbox"], dtype=np.float32)
        boxes.append(b + np.r_[rng.normal(0, 1.0, 4), rng.normal(0, 3.0)].astype(np.float32))
        scores.append(float(rng.uniform(0.05, 1.0)))
        classes.append(a["category_id"] if rng.random() < 0.9 else (a["category_id"] + 1) % 4)
    inst = Instances((d["height"], d["width"]))
    inst.pred_boxes = RotatedBoxes(torch.tensor(np.array(boxes).reshape(-1, 5)))
    inst.scores = torch.tensor(scores)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


def _evaluate_share(kind, out_dir, result_file):
    """Runs in every process: evaluate this rank's contiguous share of the dataset (as InferenceSampler)."""
    import fasttcm.data.datasets  # noqa: F401  (registers the synthetic sets)
    from detectron2.data import DatasetCatalog
    from detectron2.utils import comm

    from fasttcm.evaluation.dota_evaluator import DOTAEvaluator
    from fasttcm.evaluation.text_evaluator import TextDetEvaluator

    name = "synthetic_text_val" if kind == "text" else "synthetic_aerial_val"
    dicts = DatasetCatalog.get(name)
    ev = TextDetEvaluator(name, output_dir=out_dir) if kind == "text" else DOTAEvaluator(name, output_dir=out_dir)
    ev.reset()
    n, world, rank = len(dicts), comm.get_world_size(), comm.get_rank()
    share = range(n * rank // world, n * (rank + 1) // world)
    make = _text_outputs if kind == "text" else _dota_outputs
    for i in share:
        rng = np.random.default_rng(1000 + i)  # the same predictions whichever process makes them
        d = dicts[i]
        ev.process([{"image_id": d["image_id"], "file_name": d["file_name"]}], [{"instances": make(d, rng)}])
    res = ev.evaluate()
    if comm.is_main_process():
        Path(result_file).write_text(json.dumps(res, sort_keys=True, default=float))
    else:
        assert not res  # only the main process reports


def _files(folder: Path):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["text", "dota"])
def test_two_process_evaluation_equals_single_process(tmp_path, kind):
    from fasttcm.engine.launch import launch

    _evaluate_share(kind, str(tmp_path / "one"), str(tmp_path / "one.json"))
    launch(_evaluate_share, 2, dist_url="auto", args=(kind, str(tmp_path / "two"), str(tmp_path / "two.json")))
    one, two = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    assert one == two
    task, metric = ("text_det", "hmean") if kind == "text" else ("dota_task1", "mAP")
    assert 20 < one[task][metric] < 95  # the jittered predictions score neither nothing nor everything
    files_one, files_two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(files_one) == sorted(files_two) and len(files_one) > 1
    for k in files_one:
        if k.endswith(".json"):  # result JSON: same numbers (paths of the two output folders differ)
            a = json.loads(files_one[k].decode().replace(str(tmp_path / "one"), "OUT"))
            b = json.loads(files_two[k].decode().replace(str(tmp_path / "two"), "OUT"))
            assert a == b, k
        elif not k.endswith(".zip"):
            assert files_one[k] == files_two[k], k


def test_launch_one_process_runs_in_place():
    from fasttcm.engine.launch import launch

    assert launch(lambda x: x + 1, 1, args=(41,)) == 42


# --------------------------------------------------------------------------------------------- training --
def test_two_process_training_on_cpu(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "tools/train_net.py", "--config-file", "configs/quickstart/fasttcm_synthtext_cpu.yaml",
           "--num-gpus", "2", "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "40", "SOLVER.IMS_PER_BATCH", "2",
           "SOLVER.WARMUP_ITERS", "5", "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "20",
           "DATALOADER.NUM_WORKERS", "0", "INPUT.FASTTCM.TEXT_CROP_SIZE", "128", "DATASETS.TEST", "()"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "World size: 2" in log
    rows = [json.loads(x) for x in (out / "metrics.json").read_text().splitlines() if x.strip()]
    iters = [r["iteration"] for r in rows if "total_loss" in r]
    assert iters == sorted(set(iters)) and iters[-1] == 39  # one writer: no interleaved second stream
    losses = [r["total_loss"] for r in rows if "total_loss" in r]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
    assert sorted(p.name for p in out.glob("*.pth")) == ["model_0000019.pth", "model_0000039.pth", "model_final.pth"]
    rank0 = (out / "log.txt").read_text()
    rank1 = (out / "log.txt.rank1").read_text()
    assert "Saving checkpoint to" in rank0 and "Saving checkpoint to" not in rank1
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
