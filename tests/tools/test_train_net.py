"""tools/train_net.py end to end on the synthetic text set: train, --eval-only from the checkpoint, --resume."""
import json
import subprocess
import sys

import pytest

from conftest import REPO
CFG = "configs/quickstart/fasttcm_synthtext_cpu.yaml"
COMMON = ["SOLVER.IMS_PER_BATCH", "4", "SOLVER.WARMUP_ITERS", "5", "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD",
          "20", "DATALOADER.NUM_WORKERS", "0", "SOLVER.BASE_LR", "0.003"]


def _run(args, tmp_out):
    cmd = [sys.executable, "tools/train_net.py", "--config-file", CFG] + args + ["OUTPUT_DIR", str(tmp_out)] + COMMON
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _eval_json(out):
    return json.loads((out / "inference" / "synthetic_text_val" / "text_eval.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train_net")
    log = _run(["SOLVER.MAX_ITER", "40"], out)
    return out, log


def test_training_writes_checkpoints_metrics_and_evaluates(trained):
    out, log = trained
    assert (out / "model_0000019.pth").is_file() and (out / "model_final.pth").is_file()
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    losses = [r["total_loss"] for r in rows if "total_loss" in r]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
    assert any("loss_score_map" in r for r in rows)  # the auxiliary loss is logged like the others
    assert list(out.glob("events.out.tfevents.*")), "no TensorBoard event file"
    assert "Text evaluation, protocol totaltext" in log
    res = _eval_json(out)
    assert set(res["det_only"]) >= {"precision", "recall", "hmean"}


def test_eval_only_reproduces_the_metrics(trained):
    out, _ = trained
    before = _eval_json(out)
    log = _run(["--eval-only", "MODEL.WEIGHTS", str(out / "model_final.pth")], out)
    after = _eval_json(out)
    assert after["det_only"] == before["det_only"]
    assert "copypaste: precision,recall,hmean" in log


def test_resume_continues_from_the_saved_iteration(trained):
    out, _ = trained
    log = _run(["--resume", "SOLVER.MAX_ITER", "50"], out)
    assert "Starting training from iteration 40" in log
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    iters = [r["iteration"] for r in rows if "total_loss" in r]
    assert max(iters) == 49 and iters.count(19) == 1  # appended after the first run, not restarted from 0


def _run_failing(args, tmp_out):
    cmd = [sys.executable, "tools/train_net.py", "--config-file", CFG] + args + ["OUTPUT_DIR", str(tmp_out)] + COMMON
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout + proc.stderr


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_eval_only_refuses_a_pkl_that_would_run_code(tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    weights = tmp_path / "model.pkl"
    weights.write_bytes(pickle.dumps({"model": {"x": _Evil(marker)}, "__author__": "stranger"}, protocol=2))
    log = _run_failing(["--eval-only", "MODEL.WEIGHTS", str(weights)], tmp_path / "out")
    assert not marker.exists()
    assert f"checkpoint {weights}: refused unsafe content" in log


def test_eval_only_refuses_weights_without_the_heads_and_no_weights(trained, tmp_path):
    import torch

    out, _ = trained
    full = torch.load(str(out / "model_final.pth"), map_location="cpu", weights_only=True)["model"]
    partial = tmp_path / "backbone_only.pth"
    torch.save({"model": {k: v for k, v in full.items() if not k.startswith("head.")}}, str(partial))
    log = _run_failing(["--eval-only", "MODEL.WEIGHTS", str(partial)], tmp_path / "out")
    assert f"checkpoint {partial}: does not fit the model" in log and "missing (first: head." in log
    log = _run_failing(["--eval-only"], tmp_path / "out2")
    assert "--eval-only needs trained weights" in log


_KILL_DURING_SECOND_SAVE = '''
import io, os, runpy, signal, sys
import torch
real_save, calls = torch.save, []
def save(obj, f, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the second checkpoint: write half of it, then die as with SIGKILL
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
sys.argv = ["tools/train_net.py"] + sys.argv[1:]
runpy.run_path("tools/train_net.py", run_name="__main__")
'''


def test_killed_while_saving_resumes_from_the_last_complete_checkpoint(tmp_path):
    import signal

    import torch

    out = tmp_path / "out"
    wrapper = tmp_path / "kill_on_second_save.py"
    wrapper.write_text(_KILL_DURING_SECOND_SAVE)
    small = ["SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "2", "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD",
             "10", "DATALOADER.NUM_WORKERS", "0", "INPUT.FASTTCM.TEXT_CROP_SIZE", "128", "DATASETS.TEST", "()",
             "OUTPUT_DIR", str(out)]
    cmd = [sys.executable, str(wrapper), "--config-file", CFG, "SOLVER.MAX_ITER", "30"] + small
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
    # the first checkpoint is complete and is what last_checkpoint names; the half-written one never appears
    assert (out / "last_checkpoint").read_text() == "model_0000009.pth"
    assert not (out / "model_0000019.pth").exists()
    ckpt = torch.load(str(out / "model_0000009.pth"), map_location="cpu", weights_only=True)
    assert ckpt["iteration"] == 9 and "model" in ckpt and ckpt["trainer"]["iteration"] == 9
    moments = ckpt["trainer"]["_trainer"]["optimizer"]["state"]  # AdamW's moments travel with the checkpoint
    assert len(moments) > 10 and all(float(s["step"]) == 10 for s in moments.values())
    proc = subprocess.run([sys.executable, "tools/train_net.py", "--config-file", CFG, "--resume",
                           "SOLVER.MAX_ITER", "30"] + small, cwd=REPO, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "Starting training from iteration 10" in log
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert sorted(p.name for p in out.glob("*.pth")) == ["model_0000009.pth", "model_0000019.pth",
                                                         "model_0000029.pth", "model_final.pth"]
    assert not list(out.glob(".*.tmp"))  # the killed run's temporary file was cleaned up by the next save
