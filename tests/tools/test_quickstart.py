"""tools/quickstart.py (`make demo`): its config's SEED makes training repeatable, and its last line is parseable."""
import json
import re
import subprocess
import sys

from conftest import REPO
SHORT = ["SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()"]


def _quickstart(out, *opts):
    cmd = [sys.executable, "tools/quickstart.py", "--output", str(out)] + SHORT + list(opts)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"quickstart: precision=\d\.\d{3} recall=\d\.\d{3} hmean=\d\.\d{3} \(synthetic val, 24 images\)",
                        last), last
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines() if line.strip()]
    losses = [{k: v for k, v in r.items() if k.startswith("loss_")} for r in rows if "total_loss" in r]
    assert losses and all(losses)
    return losses


def test_seeded_quickstart_repeats_its_losses(tmp_path):
    first = _quickstart(tmp_path / "a")
    assert _quickstart(tmp_path / "b") == first  # same config SEED: the same data order, augmentations and init
    assert _quickstart(tmp_path / "c", "SEED", "2") != first  # another seed: the comparison above can fail
