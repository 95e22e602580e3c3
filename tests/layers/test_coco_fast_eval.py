"""Detectron2's fast COCO evaluation (COCOeval_opt on fasttcm's numpy _C.COCOeval*) against pycocotools' COCOeval.

A small COCO set is generated with everything the matching rules care about: several categories (one without
ground truth), crowd regions, objects in every area range, exact duplicates (IoU 1), ground truths with equal
IoU to one detection, tied scores, images without annotations, more detections than maxDets.
"""
import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest
import torch

import fasttcm.layers  # noqa: F401  (supplies detectron2._C when detectron2 has no compiled ops)

import detectron2._C as d2_C  # noqa: E402  (fasttcm.layers above supplies it when not compiled)
from detectron2.evaluation.fast_eval_api import COCOeval_opt  # noqa: E402
from pycocotools import mask as mask_util  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

SIZE = 160  # image side, pixels


def _polygon(x, y, w, h, rng):
    """A convex polygon inside the box (an octagon with jittered corners cut), flat [x0, y0, x1, y1, ...]."""
    cut = rng.uniform(0.1, 0.3) * min(w, h)
    pts = [
        (x + cut, y), (x + w - cut, y), (x + w, y + cut), (x + w, y + h - cut),
        (x + w - cut, y + h), (x + cut, y + h), (x, y + h - cut), (x, y + cut),
    ]
    return [float(round(v, 2)) for p in pts for v in p]


def _keypoints(x, y, w, h, rng, visible=0.8):
    kp = []
    for _ in range(17):
        v = 2 if rng.random() < visible else 0
        kp += [float(x + rng.uniform(0, w)), float(y + rng.uniform(0, h)), v] if v else [0.0, 0.0, 0]
    return kp


def make_coco(seed, n_images=8, gt_id_start=1):
    """(ground-truth dict, bbox results, segm results, keypoint results) of a generated COCO set."""
    rng = np.random.default_rng(seed)
    images, anns, box_res, seg_res, kp_res = [], [], [], [], []
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 3, 7)]  # category 7 never has ground truth
    aid = gt_id_start
    for img in range(1, n_images + 1):
        images.append({"id": img, "width": SIZE, "height": SIZE, "file_name": f"{img}.jpg"})
        if img == n_images:  # an image with neither ground truth nor detections
            continue
        n = 0 if img == 2 else int(rng.integers(2, 6))
        gts = []
        for k in range(n):
            side = float(rng.choice([12, 24, 50, 110]) * rng.uniform(0.8, 1.2))  # small, medium, large
            w, h = side, side * rng.uniform(0.6, 1.0)
            x, y = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
            cat = int(rng.choice([1, 3]))
            crowd = int(k == 0 and img % 3 == 0)
            poly = _polygon(x, y, w, h, rng)
            rle = mask_util.frPyObjects([poly], SIZE, SIZE)
            area = float(mask_util.area(mask_util.merge(rle)))
            ann = {
                "id": aid, "image_id": img, "category_id": cat, "bbox": [x, y, w, h], "area": area,
                "iscrowd": crowd, "segmentation": [poly],
            }
            if cat == 1:
                ann["keypoints"] = _keypoints(x, y, w, h, rng)
                ann["num_keypoints"] = sum(1 for v in ann["keypoints"][2::3] if v)
            else:
                ann["keypoints"], ann["num_keypoints"] = [0.0] * 51, 0
            anns.append(ann)
            gts.append(ann)
            aid += 1
        if img == 4 and gts:  # a twin of a ground truth: one detection has equal IoU with both
            twin = dict(copy.deepcopy(gts[-1]), id=aid, iscrowd=0)
            anns.append(twin)
            gts.append(twin)
            aid += 1
        for g in gts:
            x, y, w, h = g["bbox"]
            for j in range(int(rng.integers(0, 4))):
                exact = j == 0 and rng.random() < 0.3
                dx, dy = (0.0, 0.0) if exact else rng.normal(0, 0.12 * w, 2)
                sw, sh = (1.0, 1.0) if exact else rng.uniform(0.75, 1.25, 2)
                bx = [float(x + dx), float(y + dy), float(w * sw), float(h * sh)]
                score = float(np.round(rng.uniform(0.05, 1.0), 1))  # rounded: many tied scores
                cat = g["category_id"] if rng.random() < 0.85 else 7
                box_res.append({"image_id": g["image_id"], "category_id": cat, "bbox": bx, "score": score})
                polys = g["segmentation"] if exact else [_polygon(*bx, rng)]
                seg = mask_util.merge(mask_util.frPyObjects(polys, SIZE, SIZE))
                seg["counts"] = seg["counts"].decode("ascii")
                seg_res.append({"image_id": g["image_id"], "category_id": cat, "segmentation": seg, "score": score})
                if g["category_id"] == 1:
                    kp = np.array(g["keypoints"], dtype=float).reshape(17, 3)
                    kp[:, :2] += rng.normal(0, 0.05 * w, (17, 2))
                    kp[:, 2] = 1
                    kp_res.append({"image_id": g["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                                   "score": score})
        for _ in range(int(rng.integers(0, 4))):  # false positives anywhere
            w = float(rng.uniform(8, 80))
            bx = [float(rng.uniform(0, SIZE - w)), float(rng.uniform(0, SIZE - w)), w, w]
            score = float(np.round(rng.uniform(0.05, 1.0), 1))
            cat = int(rng.choice([1, 3, 7]))
            box_res.append({"image_id": img, "category_id": cat, "bbox": bx, "score": score})
            seg = mask_util.merge(mask_util.frPyObjects([_polygon(*bx, rng)], SIZE, SIZE))
            seg["counts"] = seg["counts"].decode("ascii")
            seg_res.append({"image_id": img, "category_id": cat, "segmentation": seg, "score": score})
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, box_res, seg_res, kp_res


def _coco(gt):
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = copy.deepcopy(gt)
        api.createIndex()
    return api


def _run(cls, gt, results, iou_type, **params):
    coco_gt = _coco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = cls(coco_gt, coco_dt, iou_type)
        for k, v in params.items():
            setattr(ev.params, k, v)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _assert_same(fast, slow):
    assert fast.eval["counts"] == slow.eval["counts"]
    for key in ("precision", "recall", "scores"):
        a, b = np.asarray(fast.eval[key]), np.asarray(slow.eval[key])
        assert a.shape == b.shape, key
        np.testing.assert_array_equal(a, b, err_msg=key)
    np.testing.assert_array_equal(fast.stats, slow.stats)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_same_arrays_as_pycocotools(seed, iou_type):
    gt, box_res, seg_res, _ = make_coco(seed)
    res = box_res if iou_type == "bbox" else seg_res
    slow = _run(COCOeval, gt, res, iou_type)
    fast = _run(COCOeval_opt, gt, res, iou_type)
    _assert_same(fast, slow)
    # a non-trivial set: some AP, not perfect, and an absent category (-1 entries)
    assert 0.05 < slow.stats[0] < 0.95
    assert (slow.eval["precision"] == -1).any() and (slow.eval["precision"] > 0).any()


@pytest.mark.parametrize(
    "params",
    [
        {"useCats": 0},
        {"maxDets": [1, 2, 5]},  # fewer detections allowed than there are
        {"iouThrs": np.array([0.1, 0.5, 0.99, 1.0])},  # 1.0 matches only through min(t, 1 - 1e-10)
        {"areaRng": [[0, 1e10], [0, 400], [400, 3000], [3000, 1e10]], "areaRngLbl": ["all", "s", "m", "l"]},
        {"recThrs": np.linspace(0.0, 1.0, 11)},
        {"imgIds": [1, 3, 4, 5]},
    ],
    ids=["no-cats", "max-dets", "iou-thresholds", "area-ranges", "recall-thresholds", "image-subset"],
)
def test_same_arrays_with_other_params(params):
    gt, box_res, _, _ = make_coco(2)
    slow = _run(COCOeval, gt, box_res, "bbox", **copy.deepcopy(params))
    fast = _run(COCOeval_opt, gt, box_res, "bbox", **copy.deepcopy(params))
    _assert_same(fast, slow)


def test_same_arrays_for_keypoints():
    gt, _, _, kp_res = make_coco(3)
    assert kp_res
    slow = _run(COCOeval, gt, kp_res, "keypoints")
    fast = _run(COCOeval_opt, gt, kp_res, "keypoints")
    _assert_same(fast, slow)
    assert slow.stats[0] > 0


def test_ground_truth_id_zero_counts_as_unmatched_like_pycocotools():
    # pycocotools records a match by the ground truth's id, so a ground truth with id 0 looks unmatched
    gt, box_res, _, _ = make_coco(4, gt_id_start=0)
    assert any(a["id"] == 0 for a in gt["annotations"])
    _assert_same(_run(COCOeval_opt, gt, box_res, "bbox"), _run(COCOeval, gt, box_res, "bbox"))


def test_equal_iou_goes_to_the_later_ground_truth():
    # d1 lies halfway between A and B (IoU 0.6 with both); pycocotools gives it the later one, B, so d2 (IoU 1 with
    # A, 1/3 with B) still matches A: two true positives at IoU 0.5. Taking A first would leave d2 a false positive.
    gt = {
        "images": [{"id": 1, "width": 64, "height": 64}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 0, 20, 20], "area": 400, "iscrowd": 0},
        ],
    }
    res = [
        {"image_id": 1, "category_id": 1, "bbox": [5, 0, 20, 20], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.8},
    ]
    slow = _run(COCOeval, gt, res, "bbox")
    fast = _run(COCOeval_opt, gt, res, "bbox")
    _assert_same(fast, slow)
    assert slow.eval["recall"][0, 0, 0, 2] == 1.0  # IoU 0.5, all areas, 100 detections: both found


def test_no_detections_of_a_category_and_empty_images():
    gt, box_res, _, _ = make_coco(5)
    only3 = [r for r in box_res if r["category_id"] == 3]
    _assert_same(_run(COCOeval_opt, gt, only3, "bbox"), _run(COCOeval, gt, only3, "bbox"))


def test_accumulate_refuses_mismatched_evaluations():
    gt, box_res, _, _ = make_coco(6)
    ev = _run(COCOeval_opt, gt, box_res, "bbox")
    with pytest.raises(ValueError, match="image evaluations, expected"):
        d2_C.COCOevalAccumulate(ev._paramsEval, ev._evalImgs_cpp[:-1])


def _register(tmp_path, name, gt):
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances

    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(gt))
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    register_coco_instances(name, {}, str(path), str(tmp_path))
    DatasetCatalog.get(name)  # loads the json: sets thing_dataset_id_to_contiguous_id


def _outputs(gt, box_res, seg_res, name):
    """Model-style outputs (Instances with boxes, scores, classes, masks) per image, from the generated results."""
    from detectron2.data import MetadataCatalog
    from detectron2.structures import Boxes, Instances

    to_contig = MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id
    inputs, outputs = [], []
    for im in gt["images"]:
        rows = [(b, s) for b, s in zip(box_res, seg_res) if b["image_id"] == im["id"]]
        inst = Instances((SIZE, SIZE))
        xywh = torch.tensor([b["bbox"] for b, _ in rows], dtype=torch.float64).reshape(-1, 4)
        inst.pred_boxes = Boxes(torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1).float())
        inst.scores = torch.tensor([b["score"] for b, _ in rows], dtype=torch.float32)
        inst.pred_classes = torch.tensor([to_contig[b["category_id"]] for b, _ in rows], dtype=torch.int64)
        masks = [mask_util.decode(dict(s["segmentation"], counts=s["segmentation"]["counts"].encode())) for _, s in rows]
        inst.pred_masks = torch.tensor(np.array(masks, dtype=bool).reshape(-1, SIZE, SIZE))
        inputs.append({"image_id": im["id"], "height": SIZE, "width": SIZE})
        outputs.append({"instances": inst})
    return inputs, outputs


def _evaluate(name, inputs, outputs, tmp_path, **kwargs):
    from detectron2.evaluation import COCOEvaluator

    ev = COCOEvaluator(name, distributed=False, output_dir=str(tmp_path / "out"), **kwargs)
    ev.reset()
    ev.process(inputs, outputs)
    return ev.evaluate()


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_coco_evaluator_defaults_give_pycocotools_ap(tmp_path):
    gt, box_res, seg_res, _ = make_coco(7)
    name = "fasttcm_test_coco_fast_eval"
    _register(tmp_path, name, gt)
    inputs, outputs = _outputs(gt, box_res, seg_res, name)
    default = _evaluate(name, inputs, outputs, tmp_path)  # use_fast_impl=True: fasttcm's _C.COCOeval*
    official = _evaluate(name, inputs, outputs, tmp_path, use_fast_impl=False)
    assert set(default) == set(official) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        assert set(default[task]) == set(official[task])
        assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP-c1", "AP-c3", "AP-c7"} <= set(default[task])
        for key, val in official[task].items():
            assert _same(default[task][key], val), (task, key, default[task][key], val)
        assert 5 < official[task]["AP"] < 95
