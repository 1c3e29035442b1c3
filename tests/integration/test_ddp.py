"""DistributedDataParallel on CPU: two torchrun processes (gloo) end with identical replicas, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("model", "steps", "size"),
    [
        ("zhang-siggraph17", 3, 32),  # a branch without a loss: DDP must be told about unused parameters
        ("deoldify-artistic", 20, 64),  # two networks, three phases, the critic-threshold switch across ranks
    ],
)
def test_two_replicas_stay_identical(tmp_path, model, steps, size):
    runs, out = tmp_path / "runs", tmp_path / "weights"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "training", "train", "--model", model, "--variant", "tiny", "--steps", str(steps),
        "--synthetic", "8", "--image-size", str(size), "--batch-size", "2", "--workers", "0",
        "--val-samples", "2", "--val-interval", "1", "--run-dir", str(runs), "--out", str(out),
        "--no-progress", "--param-digest",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLORIZERS_DEVICE": "cpu"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]

    digests = [json.loads((runs / model / f"params.rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [d["step"] for d in digests] == [steps, steps]
    assert digests[0]["parameters"] == digests[1]["parameters"]
    assert digests[0]["ema"] == digests[1]["ema"]

    result = json.loads(done.stdout.strip().splitlines()[-1])  # printed by rank 0 only
    assert result["status"] == "finished" and result["steps"] == steps
    assert sorted(p.name for p in out.iterdir()) == [f"{model}.json", f"{model}.safetensors"]
    progress = json.loads((runs / model / "progress.json").read_text())
    assert progress["world_size"] == 2 and progress["status"] == "finished"
    sidecar = json.loads((out / f"{model}.json").read_text())
    assert sidecar["training"]["world_size"] == 2 and sidecar["hardware"].startswith("2 x ")
