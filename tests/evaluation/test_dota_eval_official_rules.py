"""DOTA Task1 rules as the devkit's scripts apply them (docs/PROTOCOLS.md §3-4): the Task1_{:s}.txt template,
classes outside the list ignored and counted, the v1.5 script's difficult rule, the exact 0.5 threshold, bow-tie
warnings, one-line CLI errors and the merger's NMS threshold; on small files written here."""
import json
import os
from fractions import Fraction

import numpy as np
import pytest

from fasttcm.structures.quads import exact_pair_areas, rboxes_to_quads
from fasttcm.formats.dota import (
    DOTA_V1_CLASSES,
    Task1Detections,
    format_label_line,
    parse_label_file,
    read_task1_dir,
    task1_template,
    write_task1_dir,
)
from conftest import REPO, load_tool
from fasttcm.evaluation.dota_eval import evaluate_files, load_ground_truth


def box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


A, B, C = box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)


def write_gt(folder, gt):
    os.makedirs(folder, exist_ok=True)
    for img, objs in gt.items():
        with open(os.path.join(folder, f"{img}.txt"), "w") as f:
            f.write("imagesource:GoogleEarth\ngsd:0.1\n")
            f.writelines(format_label_line(q, c, d) + "\n" for q, c, d in objs)


def dets(rows):
    return Task1Detections(np.array([r[0] for r in rows], object), np.array([r[1] for r in rows], float),
                           np.array([r[2] for r in rows], float).reshape(-1, 4, 2))


@pytest.fixture
def small_set(tmp_path):
    write_gt(str(tmp_path / "gt"), {"I1": [(A, "plane", 0), (B, "ship", 0)], "I2": [(C, "ship", 0)]})
    write_task1_dir(str(tmp_path / "det"), {"plane": dets([("I1", 0.9, A)]), "ship": dets([("I2", 0.8, C)])})
    return tmp_path


# ----------------------------------------------------------------------------------------------- templates --
@pytest.mark.parametrize("form", ["{}", "{:s}", "{0}", "{0:s}", "folder"])
def test_detection_templates(small_set, form):
    det = str(small_set / "det") if form == "folder" else str(small_set / "det" / f"Task1_{form}.txt")
    res = evaluate_files(det, str(small_set / "gt"))
    assert res.classes["plane"].ap == pytest.approx(1.0) and res.classes["ship"].ap == pytest.approx(0.5454545)
    assert set(read_task1_dir(det)) == {"plane", "ship"}  # every Task1_<class>.txt of the folder


@pytest.mark.parametrize("bad,what", [("Task1_{cls}.txt", "exactly one field"), ("Task1_{:d}.txt", "exactly one"),
                                      ("{}_Task1_{}.txt", "exactly one field"), ("Task1_{.txt", "not a template")])
def test_bad_templates_name_the_path(small_set, bad, what):
    with pytest.raises(ValueError, match=what) as e:
        task1_template(str(small_set / "det" / bad))
    assert str(small_set / "det") in str(e.value)


def test_cli_accepts_the_devkit_template_and_fails_in_one_line(small_set, capsys):
    gt = str(small_set / "gt")
    assert load_tool("evaluate_dota").main(["--det", str(small_set / "det" / "Task1_{:s}.txt"), "--gt", gt]) == 0
    assert "| plane" in capsys.readouterr().out
    cases = [
        ["--det", str(small_set / "nowhere" / "Task1_{:s}.txt"), "--gt", gt],  # no such folder
        ["--det", str(small_set / "det" / "Task1_{cls}.txt"), "--gt", gt],  # not the class field
        ["--det", str(small_set / "det" / "Task1_plane.txt"), "--gt", gt],  # a file, not a folder or template
        ["--det", str(small_set / "det" / "Result_{}.txt"), "--gt", gt],  # no file matches
        ["--det", str(small_set / "det"), "--gt", gt, "--imageset", str(small_set / "missing.txt")],
        ["--det", str(small_set / "det"), "--gt", str(small_set / "nogt")],
    ]
    for argv in cases:
        assert load_tool("evaluate_dota").main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert any(os.path.basename(a.split("{")[0].rstrip("/")) in err for a in argv[1::2]), err


# ---------------------------------------------------------------------------------- classes outside the list --
def _with_v15_objects(tmp_path, n_crane=37):
    rng = np.random.default_rng(0)
    objs = [(A, "plane", 0), (B, "ship", 0)]
    objs += [(box(*(xy := rng.integers(60, 900, 2)), *(xy + 20)), "container-crane", 0) for _ in range(n_crane)]
    write_gt(str(tmp_path / "gt"), {"I1": objs, "I2": [(C, "ship", 0), (C + 100, "helipad", 0)]})
    write_task1_dir(str(tmp_path / "det"), {"plane": dets([("I1", 0.9, A)]), "ship": dets([("I2", 0.8, C)])})


def test_classes_outside_the_list_are_ignored_and_counted(tmp_path, capsys):
    _with_v15_objects(tmp_path)
    gt = load_ground_truth(str(tmp_path / "gt"), None, DOTA_V1_CLASSES)
    assert gt.ignored == {"container-crane": 37, "helipad": 1} and len(gt.image) == 3
    out = tmp_path / "r.json"
    assert load_tool("evaluate_dota").main(["--det", str(tmp_path / "det"), "--gt", str(tmp_path / "gt"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ignored 38 ground-truth objects of 2 classes outside DOTA-v1.0: container-crane (37), helipad (1)" in text
    js = json.loads(out.read_text())
    assert js["warnings"]["ignored_gt_objects"] == {"container-crane": 37, "helipad": 1}
    assert js["classes"]["plane"]["ap"] == pytest.approx(1.0) and js["classes"]["ship"]["npos"] == 2
    # the message of the issue, for one class
    write_gt(str(tmp_path / "gt1"), {"I1": [(A, "plane", 0)] + [(B + i, "container-crane", 0) for i in range(37)]})
    assert load_tool("evaluate_dota").main(["--det", str(tmp_path / "det"), "--gt", str(tmp_path / "gt1")]) == 0
    assert "ignored 37 ground-truth objects of 1 class outside DOTA-v1.0: container-crane\n" in capsys.readouterr().out
    # under v1.5 container-crane is a class of the list: only helipad is left out
    assert load_tool("evaluate_dota").main(["--det", str(tmp_path / "det"), "--gt", str(tmp_path / "gt"), "--v15", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    assert js["warnings"]["ignored_gt_objects"] == {"helipad": 1} and js["classes"]["container-crane"]["npos"] == 37


def test_strict_classes_keeps_the_refusal_and_training_loaders_refuse(tmp_path, capsys):
    _with_v15_objects(tmp_path, n_crane=1)
    assert load_tool("evaluate_dota").main(["--det", str(tmp_path / "det"), "--gt", str(tmp_path / "gt"), "--strict-classes"]) == 2
    err = capsys.readouterr().err
    assert "I1.txt:5: unknown class 'container-crane'" in err and err.count("\n") == 1
    with pytest.raises(ValueError, match=r"I1\.txt:5: unknown class 'container-crane'"):
        parse_label_file(str(tmp_path / "gt" / "I1.txt"), DOTA_V1_CLASSES)  # what the dataset loader calls
    from fasttcm.data.datasets.dota import load_dota_dataset

    from PIL import Image

    (tmp_path / "images").mkdir()
    for n in ("I1", "I2"):
        Image.new("RGB", (1024, 1024)).save(tmp_path / "images" / f"{n}.png")
    with pytest.raises(ValueError, match=r"I1\.txt:5: unknown class 'container-crane'"):
        load_dota_dataset(str(tmp_path / "images"), str(tmp_path / "gt"))


# ------------------------------------------------------------------------------------------- DOTA-v1.5 rule --
def test_v15_reads_every_object_as_not_difficult_by_default(tmp_path, capsys):
    write_gt(str(tmp_path / "gt"), {"I1": [(A, "plane", 1), (B, "plane", 0), (C, "container-crane", 2)]})
    write_task1_dir(str(tmp_path / "det"), {"plane": dets([("I1", 0.9, A)]),
                                             "container-crane": dets([("I1", 0.5, C)])})
    out = tmp_path / "r.json"
    base = ["--det", str(tmp_path / "det"), "--gt", str(tmp_path / "gt"), "--json", str(out)]
    assert load_tool("evaluate_dota").main(base + ["--v15"]) == 0
    text = capsys.readouterr().out
    js = json.loads(out.read_text())
    # the v1.5 script: both planes count (npos 2) and the detection on the "difficult" one is a true positive
    assert js["classes"]["plane"]["npos"] == 2 and js["classes"]["container-crane"]["npos"] == 1
    assert js["difficult_used"] is False and "difficult flags not used" in text
    assert js["classes"]["plane"]["ap"] == pytest.approx(6 / 11)  # recall 0.5 at precision 1
    assert load_tool("evaluate_dota").main(base + ["--v15", "--honour-difficult"]) == 0
    js = json.loads(out.read_text())
    assert js["classes"]["plane"]["npos"] == 1 and js["classes"]["plane"]["ap"] == 0.0 and js["difficult_used"]
    assert js["classes"]["container-crane"]["npos"] == 0
    assert load_tool("evaluate_dota").main(base) == 0  # v1.0 always honours the flags
    assert json.loads(out.read_text())["classes"]["plane"]["npos"] == 1
    with pytest.raises(SystemExit):
        load_tool("evaluate_dota").main(["--help"])
    h = capsys.readouterr().out
    assert "v1.5 script" in h and "--honour-difficult" in h and "{:s}" in h and "--strict-classes" in h


# ------------------------------------------------------------------------------------ exact IoU, bow ties --
def _rotated_exact_half():
    rng = np.random.default_rng(5)
    for _ in range(5000):
        b = np.r_[rng.integers(200, 600, 2), rng.integers(10, 60), rng.integers(6, 30), rng.uniform(-80, 80)]
        p = np.round(rboxes_to_quads(b[None])[0])
        q = p + rng.integers(-12, 13, 2)
        inter, a, c, _, _ = exact_pair_areas(p, q)
        if inter / (a + c - inter) == Fraction(1, 2) and p[0, 1] != p[1, 1]:
            return p, q
    raise AssertionError("no exact half found")


def test_exact_half_is_not_a_match_and_just_above_is(tmp_path):
    p, q = _rotated_exact_half()
    write_gt(str(tmp_path / "gt"), {"I1": [(p, "plane", 0)]})
    write_task1_dir(str(tmp_path / "det"), {"plane": dets([("I1", 0.9, q)])})
    res = evaluate_files(str(tmp_path / "det"), str(tmp_path / "gt"))
    assert (res.classes["plane"].tp, res.classes["plane"].fp) == (0, 1)
    write_task1_dir(str(tmp_path / "det2"), {"plane": dets([("I1", 0.9, (p + q) / 2)])})  # more overlap
    res = evaluate_files(str(tmp_path / "det2"), str(tmp_path / "gt"))
    assert res.classes["plane"].tp == 1


def test_bow_ties_are_counted_and_warned(tmp_path, capsys):
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], float)
    write_gt(str(tmp_path / "gt"), {"I1": [(bow, "plane", 0), (B, "plane", 0), (bow + 50, "ship", 0)]})
    write_task1_dir(str(tmp_path / "det"), {"plane": dets([("I1", 0.9, A), ("I1", 0.8, bow + 20)]),
                                             "ship": dets([("I1", 0.7, bow + 50), ("I1", 0.6, bow + 90)])})
    out = tmp_path / "r.json"
    assert load_tool("evaluate_dota").main(["--det", str(tmp_path / "det"), "--gt", str(tmp_path / "gt"), "--json", str(out)]) == 0
    assert "warning: 2 ground-truth and 3 detection quads cross themselves" in capsys.readouterr().out
    js = json.loads(out.read_text())
    assert (js["warnings"]["bowtie_gt"], js["warnings"]["bowtie_det"]) == (2, 3)
    # a bow tie is its two lobes: the square A over the bow tie's lobes (50 of 100) is IoU 0.5, not a match;
    # the identical bow tie (ship) is IoU 1, a match
    assert js["classes"]["ship"]["ap"] == pytest.approx(1.0)
    assert js["classes"]["plane"]["ap"] == 0.0


# ----------------------------------------------------------------------------------------------- merging --
def test_merge_help_names_the_devkit_scripts():
    import subprocess
    import sys

    repo = str(REPO)
    r = subprocess.run([sys.executable, os.path.join(repo, "tools", "dota_merge.py"), "--help"], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=repo), cwd=repo)
    assert r.returncode == 0
    help_text = " ".join(r.stdout.split())
    assert "0.1 (default) reproduces DOTA_devkit's ResultMerge_multi_process.py" in help_text
    assert "0.3 its single-process ResultMerge.py" in help_text
