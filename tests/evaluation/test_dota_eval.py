"""DOTA Task1 evaluation (docs/PROTOCOLS.md §3) on hand-made cases, against a brute-force reference, the CLI and the
Detectron2 evaluator (including a split set merged back)."""
import json
import os
import shutil

import numpy as np
import pytest
import shapely
import torch
from detectron2.data import MetadataCatalog
from detectron2.structures import Instances, RotatedBoxes

from fasttcm.data.datasets.dota import register_dota
from fasttcm.structures.quads import quads_to_rboxes, rboxes_to_quads
from fasttcm.formats.dota import (
    DOTA_V1_CLASSES,
    Task1Detections,
    format_label_line,
    parse_label_file,
    read_task1_dir,
    write_task1_dir,
)
from fasttcm.data.dota.split import SplitConfig, split_dataset
from conftest import load_tool

from fasttcm.evaluation.dota_eval import evaluate_files, evaluate_task1, load_ground_truth, voc07_ap
from fasttcm.evaluation.dota_evaluator import DOTAEvaluator


def box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def write_gt(folder, gt):
    """gt: {image: [(quad, class, difficult)]}"""
    os.makedirs(folder, exist_ok=True)
    for img, objs in gt.items():
        with open(os.path.join(folder, f"{img}.txt"), "w", newline="\r\n") as f:
            f.write("imagesource:GoogleEarth\ngsd:0.1\n")
            f.writelines(format_label_line(q, c, d) + "\n" for q, c, d in objs)


def dets_of(rows):
    """rows: [(image, score, quad)] in file order -> Task1Detections"""
    if not rows:
        return Task1Detections.empty()
    return Task1Detections(np.array([r[0] for r in rows], object), np.array([r[1] for r in rows], float),
                           np.array([r[2] for r in rows], float))


def run(tmp_path, gt, dets, images=None):
    write_gt(str(tmp_path / "gt"), gt)
    g = load_ground_truth(str(tmp_path / "gt"), images, DOTA_V1_CLASSES)
    return evaluate_task1({c: dets_of(r) for c, r in dets.items()}, g)


A, B, C = box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)


def test_perfect_predictions(tmp_path):
    gt = {"I1": [(A, "plane", 0), (B, "plane", 0), (C, "ship", 0)], "I2": [(A, "ship", 0)]}
    res = run(tmp_path, gt, {"plane": [("I1", 0.9, A), ("I1", 0.8, B)], "ship": [("I2", 1, A), ("I1", 1, C)]})
    # 11 x (1 / 11) summed as the official script does: 1 up to float rounding
    assert res.classes["plane"].ap == pytest.approx(1.0) and res.classes["ship"].ap == pytest.approx(1.0)
    assert res.classes["plane"].npos == 2 and res.classes["plane"].tp == 2 and res.classes["plane"].fp == 0
    assert res.classes["bridge"].ap == 0.0 and res.classes["bridge"].npos == 0  # classes without GT
    assert res.map == pytest.approx(2 / 15)  # mAP over the 15 classes
    assert res.num_images == 2


def test_duplicates_are_false_positives(tmp_path):
    gt = {"I1": [(A, "plane", 0), (B, "plane", 0)]}
    # A found (TP), A again (used -> FP), B found (TP): rec .5 .5 1, prec 1 .5 .667
    res = run(tmp_path, gt, {"plane": [("I1", 0.9, A), ("I1", 0.8, A + 0.1), ("I1", 0.7, B)]})
    r = res.classes["plane"]
    assert (r.tp, r.fp, r.num_dets) == (2, 1, 3)
    assert r.ap == pytest.approx((6 * 1 + 5 * (2 / 3)) / 11)


def test_difficult_objects_neither_tp_nor_fp(tmp_path):
    gt = {"I1": [(A, "plane", 0), (B, "plane", 1)]}
    res = run(tmp_path, gt, {"plane": [("I1", 0.95, B), ("I1", 0.9, A), ("I1", 0.8, B + 0.2)]})
    r = res.classes["plane"]
    assert (r.npos, r.tp, r.fp, r.ignored) == (1, 1, 0, 2)
    assert r.ap == pytest.approx(1.0)
    # only difficult ground truth: npos 0 -> AP 0
    res = run(tmp_path / "b", {"I1": [(A, "plane", 1)]}, {"plane": [("I1", 0.9, A)]})
    assert res.classes["plane"].npos == 0 and res.classes["plane"].ap == 0.0


def test_classes_without_gt_and_empty_or_missing_files(tmp_path):
    gt = {"I1": [(A, "plane", 0)]}
    write_gt(str(tmp_path / "gt"), gt)
    dets = {"plane": dets_of([]), "ship": dets_of([("I1", 0.9, A)])}
    write_task1_dir(str(tmp_path / "det"), dets)  # Task1_plane.txt is empty; no file for the 13 others
    assert os.path.getsize(tmp_path / "det" / "Task1_plane.txt") == 0
    res = evaluate_files(str(tmp_path / "det" / "Task1_{}.txt"), str(tmp_path / "gt"))
    assert res.classes["plane"].ap == 0.0 and res.classes["plane"].npos == 1 and res.classes["plane"].num_dets == 0
    assert res.classes["ship"].ap == 0.0 and res.classes["ship"].fp == 1  # detections, but no ground truth
    assert res.map == 0.0


def test_unknown_images_reported_and_ignored(tmp_path):
    gt = {"I1": [(A, "plane", 0)], "I2": [(B, "plane", 0)]}
    base = run(tmp_path, gt, {"plane": [("I1", 0.9, A), ("I2", 0.5, C)]}, images=["I1", "I2"])
    res = run(tmp_path, gt, {"plane": [("I3", 0.99, A), ("I1", 0.9, A), ("I9", 0.7, A), ("I2", 0.5, C)]},
              images=["I1", "I2"])
    assert res.unknown_count == 2 and res.unknown_examples == ["I3", "I9"]
    assert res.classes["plane"].ap == base.classes["plane"].ap and res.classes["plane"].num_dets == 2
    # an image of the image set outside the GT folders is an error; a GT file outside the set is not evaluated
    res = run(tmp_path, gt, {"plane": [("I2", 0.9, B)]}, images=["I1"])
    assert res.unknown_count == 1 and res.classes["plane"].npos == 1
    with pytest.raises(FileNotFoundError, match="I7.txt"):
        run(tmp_path, gt, {}, images=["I1", "I7"])


def test_ties_broken_by_file_order(tmp_path):
    gt = {"I1": [(A, "plane", 0), (B, "plane", 0)]}
    tp, fp = ("I1", 0.5, A), ("I1", 0.5, C)
    first_tp = run(tmp_path, gt, {"plane": [tp, fp, ("I1", 0.4, B)]}).classes["plane"].ap
    first_fp = run(tmp_path, gt, {"plane": [fp, tp, ("I1", 0.4, B)]}).classes["plane"].ap
    # TP first: rec .5 .5 1, prec 1 .5 .667; FP first: rec 0 .5 1, prec 0 .5 .667
    assert first_tp == pytest.approx((6 * 1 + 5 * (2 / 3)) / 11)
    assert first_fp == pytest.approx((6 * (2 / 3) + 5 * (2 / 3)) / 11)
    again = [run(tmp_path, gt, {"plane": [fp, tp, ("I1", 0.4, B)]}).classes["plane"].ap for _ in range(3)]
    assert again == [first_fp] * 3


def test_iou_exactly_half_is_not_a_match(tmp_path):
    gt = {"I1": [(A, "plane", 0)]}
    half = box(0, 0, 10, 5)  # IoU 50 / 100 = 0.5 exactly
    assert run(tmp_path, gt, {"plane": [("I1", 0.9, half)]}).classes["plane"].tp == 0
    above = box(0, 0, 10, 5.01)
    assert run(tmp_path, gt, {"plane": [("I1", 0.9, above)]}).classes["plane"].tp == 1


def test_largest_iou_ground_truth_and_no_fallback(tmp_path):
    # two overlapping objects; the detection matches both above 0.5, the larger IoU wins; a second detection
    # whose best object is used is a FP even if it overlaps the other one above 0.5 too
    g1, g2 = box(0, 0, 10, 10), box(1, 0, 11, 10)
    gt = {"I1": [(g1, "ship", 0), (g2, "ship", 0)]}
    res = run(tmp_path, gt, {"ship": [("I1", 0.9, box(1, 0, 11, 10)), ("I1", 0.8, box(1.2, 0, 11.2, 10))]})
    assert (res.classes["ship"].tp, res.classes["ship"].fp) == (1, 1)
    # equal IoU (0.905 with both): the first object in file order, g1, is taken; then an exact copy of g2 finds
    # g2 unused (TP). Had the tie gone to g2, the second detection would be a FP.
    res = run(tmp_path, gt, {"ship": [("I1", 0.9, box(0.5, 0, 10.5, 10)), ("I1", 0.8, g2)]})
    assert (res.classes["ship"].tp, res.classes["ship"].fp) == (2, 0)
    gt_swapped = {"I1": [(g2, "ship", 0), (g1, "ship", 0)]}
    res = run(tmp_path / "b", gt_swapped, {"ship": [("I1", 0.9, box(0.5, 0, 10.5, 10)), ("I1", 0.8, g2)]})
    assert (res.classes["ship"].tp, res.classes["ship"].fp) == (1, 1)


def test_voc07_eleven_points_by_hand(tmp_path):
    # npos 4: TP FP TP FP TP -> rec .25 .25 .5 .5 .75, prec 1 .5 .667 .5 .6
    objs = [box(20 * i, 0, 20 * i + 10, 10) for i in range(4)]
    gt = {"I1": [(q, "plane", 0) for q in objs]}
    miss = box(200, 200, 210, 210)
    dets = [("I1", 0.9, objs[0]), ("I1", 0.8, miss), ("I1", 0.7, objs[1]), ("I1", 0.6, miss + 50),
            ("I1", 0.5, objs[2])]
    ap = run(tmp_path, gt, {"plane": dets}).classes["plane"].ap
    # t = 0, .1, .2 -> 1; t = .3 (0.30000000000000004), .4, .5 -> 2/3; t = .6, .7 -> .6; t = .8, .9, 1 -> 0
    assert ap == pytest.approx((3 * 1 + 3 * (2 / 3) + 2 * 0.6) / 11)
    # the official thresholds come from numpy.arange and carry its rounding: recall 0.3 misses "0.3"
    assert voc07_ap(np.array([0.3]), np.array([1.0])) == pytest.approx(3 / 11)
    assert voc07_ap(np.array([0.4]), np.array([1.0])) == pytest.approx(5 / 11)
    assert voc07_ap(np.array([1.0]), np.array([0.5])) == pytest.approx(0.5)


def _reference_ap(gt, dets, classes):
    """Straight transcription of docs/PROTOCOLS.md §3 with shapely, for comparison (slow, simple)."""
    aps = {}
    for c in classes:
        recs = {img: [(shapely.Polygon(q), d) for q, cc, d in objs if cc == c] for img, objs in gt.items()}
        npos = sum(1 for objs in recs.values() for _, d in objs if not d)
        rows = sorted(dets.get(c, []), key=lambda r: -r[1])  # stable
        used = {img: [False] * len(objs) for img, objs in recs.items()}
        tp, fp = [], []
        for img, _, q in rows:
            if img not in recs:
                continue
            p = shapely.Polygon(q)
            best, jmax = -1.0, -1
            for j, (g, _) in enumerate(recs[img]):
                inter = p.intersection(g).area
                iou = inter / (p.area + g.area - inter)
                if iou > best:
                    best, jmax = iou, j
            t = f = 0
            if best > 0.5:
                if not recs[img][jmax][1]:
                    if not used[img][jmax]:
                        t, used[img][jmax] = 1, True
                    else:
                        f = 1
            else:
                f = 1
            tp.append(t)
            fp.append(f)
        if npos == 0:
            aps[c] = 0.0
            continue
        tpc, fpc = np.cumsum(tp), np.cumsum(fp)
        rec = tpc / npos
        prec = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            ap += (prec[rec >= t].max() if (rec >= t).any() else 0.0) / 11
        aps[c] = ap
    return aps


def test_matches_brute_force_reference(tmp_path):
    rng = np.random.default_rng(0)
    classes = DOTA_V1_CLASSES[:4]
    gt, dets = {}, {c: [] for c in classes}
    for i in range(12):
        n = int(rng.integers(0, 15))
        b = np.c_[rng.uniform(20, 200, (n, 2)), rng.uniform(5, 40, (n, 2)), rng.uniform(-90, 90, n)]
        q = np.round(rboxes_to_quads(b))
        cls = rng.integers(0, 4, n)
        gt[f"I{i}"] = [(q[j], classes[cls[j]], int(rng.random() < 0.15)) for j in range(n)]
        for j in range(n):
            for _ in range(int(rng.integers(0, 3))):  # 0-2 noisy detections per object
                nb = b[j] + rng.normal(0, 1, 5) * [3, 3, 3, 2, 8]
                nb[2:4] = np.abs(nb[2:4]) + 1
                dets[classes[cls[j]]].append((f"I{i}", float(np.round(rng.uniform(0, 1), 2)), rboxes_to_quads(nb)[0]))
        for _ in range(int(rng.integers(0, 4))):  # false positives
            fb = np.r_[rng.uniform(20, 200, 2), rng.uniform(5, 40, 2), rng.uniform(-90, 90)]
            dets[classes[int(rng.integers(4))]].append((f"I{i}", float(np.round(rng.uniform(0, 1), 2)),
                                                        rboxes_to_quads(fb)[0]))
    for c in classes:  # shuffle file order
        rng.shuffle(dets[c])
    res = run(tmp_path, gt, dets)
    ref = _reference_ap(gt, dets, classes)
    for c in classes:
        assert res.classes[c].ap == pytest.approx(ref[c], abs=1e-12), c
    assert 0.2 < np.mean([ref[c] for c in classes]) < 0.95


def test_bad_detection_files(tmp_path):
    write_gt(str(tmp_path / "gt"), {"I1": [(A, "plane", 0)]})
    d = tmp_path / "det"
    d.mkdir()
    (d / "Task1_plane.txt").write_text("I1 0.9 0 0 10 0 10 10 0 10\nI1 0.8 0 0 10 0 10 10 0\n")
    with pytest.raises(ValueError, match=r"Task1_plane.txt:2: expected 10"):
        evaluate_files(str(d), str(tmp_path / "gt"))
    (d / "Task1_plane.txt").write_text("I1 high 0 0 10 0 10 10 0 10\n")
    with pytest.raises(ValueError, match=r"Task1_plane.txt:1: non-numeric score 'high'"):
        evaluate_files(str(d), str(tmp_path / "gt"))
    (d / "Task1_plane.txt").write_text("I1 0.5 0 0 10 0 nan 10 0 10\n")
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_files(str(d), str(tmp_path / "gt"))


def test_cli_table_and_json(tmp_path, capsys):
    write_gt(str(tmp_path / "gt"), {"I1": [(A, "plane", 0), (B, "ship", 1)], "I2": [(C, "ship", 0)]})
    write_task1_dir(str(tmp_path / "det"), {"plane": dets_of([("I1", 0.9, A)]), "ship": dets_of([("I2", 0.3, C)])})
    (tmp_path / "set.txt").write_text("I1\nI2\n")
    out = tmp_path / "r" / "res.json"
    rc = load_tool("evaluate_dota").main(["--det", str(tmp_path / "det" / "Task1_{}.txt"), "--gt", str(tmp_path / "gt"),
               "--imageset", str(tmp_path / "set.txt"), "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "VOC07 11-point AP, polygon IoU > 0.5" in text and "| plane" in text and "mAP" in text
    js = json.loads(out.read_text())
    assert js["mAP"] == pytest.approx(2 / 15)
    assert js["classes"]["plane"] == {"ap": pytest.approx(1.0), "npos": 1, "num_dets": 1}
    assert js["classes"]["ship"] == {"ap": pytest.approx(1.0), "npos": 1, "num_dets": 1}
    assert set(js["classes"]) == set(DOTA_V1_CLASSES)
    # v1.5: 16 classes
    rc = load_tool("evaluate_dota").main(["--det", str(tmp_path / "det"), "--gt", str(tmp_path / "gt"), "--json", str(out), "--v15"])
    assert rc == 0 and len(json.loads(out.read_text())["classes"]) == 16
    assert load_tool("evaluate_dota").main(["--det", str(tmp_path / "det"), "--gt", str(tmp_path / "nowhere")]) == 2


# ----------------------------------------------------------------------------------------- the evaluator
def _instances(quads, classes, scores, hw=(1024, 1024)):
    inst = Instances(hw)
    inst.pred_boxes = RotatedBoxes(torch.tensor(quads_to_rboxes(quads), dtype=torch.float32).reshape(-1, 5))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


def test_evaluator_on_original_images(tmp_path, shared_data):
    d = shared_data / "dota"
    register_dota("dota_eval_test_orig", str(d / "images"), str(d / "labelTxt"), overwrite=True)
    ev = DOTAEvaluator("dota_eval_test_orig", output_dir=str(tmp_path / "out"))
    ev.reset()
    for n in ("P0248", "P0706", "P1888"):
        lf = parse_label_file(str(d / "labelTxt" / f"{n}.txt"), DOTA_V1_CLASSES)
        ev.process([{"image_id": n, "file_name": str(d / "images" / f"{n}.png")}],
                   [{"instances": _instances(lf.quads, lf.class_ids, np.linspace(1, 0.5, len(lf)))}])
    res = ev.evaluate()["dota_task1"]
    present = ("plane", "small-vehicle", "large-vehicle", "ship", "harbor")
    for c in present:
        assert res[f"AP-{c}"] == pytest.approx(100.0), c  # percent
    assert res["AP-bridge"] == 0.0 and res["mAP"] == pytest.approx(100.0 * 5 / 15)
    files = sorted(os.listdir(tmp_path / "out"))
    assert files == sorted(f"Task1_{c}.txt" for c in DOTA_V1_CLASSES)
    # the written files give the same numbers through the CLI path
    again = evaluate_files(str(tmp_path / "out"), str(d / "labelTxt"))
    assert 100 * again.map == pytest.approx(res["mAP"])
    assert len(read_task1_dir(str(tmp_path / "out"))["ship"]) == 531


def test_evaluator_merges_split_sets(tmp_path, shared_data):
    d = shared_data / "dota"
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "labelTxt").mkdir()
    for n in ("P0706", "P1888"):
        shutil.copy(d / "images" / f"{n}.png", src / "images")
        shutil.copy(d / "labelTxt" / f"{n}.txt", src / "labelTxt")
    dst = tmp_path / "split"
    split_dataset(str(src), str(dst), SplitConfig(), progress=False)
    register_dota("dota_eval_test_split", str(dst / "images"), str(dst / "labelTxt"), gt_dir=str(src / "labelTxt"),
                  imageset=str(dst / "source_images.txt"), is_split=True, overwrite=True)
    assert MetadataCatalog.get("dota_eval_test_split").is_split
    ev = DOTAEvaluator("dota_eval_test_split", output_dir=None, nms_thr=0.1)
    ev.reset()
    for fn in sorted(os.listdir(dst / "labelTxt")):
        lf = parse_label_file(str(dst / "labelTxt" / fn), DOTA_V1_CLASSES)
        keep = lf.difficult != 2
        # whole objects score higher than cut ones, so merging keeps the whole copies
        whole = np.array([not np.any((q <= 1) | (q >= 1024)) for q in lf.quads], dtype=bool)
        scores = np.where(whole, 0.9, 0.5)[keep]
        ev.process([{"image_id": fn[:-4]}], [{"instances": _instances(lf.quads[keep], lf.class_ids[keep], scores)}])
    res = ev.evaluate()["dota_task1"]
    for c in ("ship", "small-vehicle", "large-vehicle", "harbor"):
        assert res[f"AP-{c}"] == pytest.approx(100.0), c


def test_evaluator_without_ground_truth_and_bad_predictions(tmp_path, shared_data, caplog):
    d = shared_data / "dota"
    register_dota("dota_eval_test_nogt", str(d / "images"), overwrite=True)  # like dota_v1_test: no labels
    assert MetadataCatalog.get("dota_eval_test_nogt").gt_dir is None
    ev = DOTAEvaluator("dota_eval_test_nogt", output_dir=str(tmp_path / "sub"))
    ev.reset()
    q = np.array([box(0, 0, 10, 10), box(5, 5, 20, 20)])
    inst = _instances(q, [0, 6], [0.9, 0.8])
    inst.pred_boxes.tensor[1, 0] = float("nan")  # a diverged prediction
    ev.process([{"file_name": str(d / "images" / "P0248.png")}], [{"instances": inst}])
    with caplog.at_level("WARNING"):
        assert ev.evaluate() == {}
    assert "1 predictions with non-finite boxes" in caplog.text
    out = read_task1_dir(str(tmp_path / "sub"))
    assert len(out) == 15 and out["plane"].images.tolist() == ["P0248"] and len(out["ship"]) == 0
