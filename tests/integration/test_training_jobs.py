"""Real training jobs through `python -m training serve`: tiny models, a few steps on synthetic pictures.

A job runs the real trainer to the end, then its weights, sidecar and archive land in a temporary model
store; a running job is cancelled; with Java present, a job registers its archive with a real TorchServe.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from colorizers import weights
from tests.helpers import free_port, make_photo, to_bytes
from tests.integration.processes import REPO, TorchServe
from training.package import describe

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY_JOB = {"model": "wallner-beta", "variant": "tiny", "synthetic": 8, "seed": 1}


@contextlib.contextmanager
def training_service(root: Path, **env: str) -> Iterator[str]:
    """``python -m training serve`` on a free port with its folders under ``root``; yields its base URL."""
    port = free_port()
    settings = {
        "TRAINING_HOST": "127.0.0.1",
        "TRAINING_PORT": str(port),
        "TRAINING_MODEL_STORE": str(root / "model_store"),
        "TRAINING_DATA_DIR": str(root / "data"),
        "TRAINING_RUNS_DIR": str(root / "runs"),
        "TRAINING_POLL_SECONDS": "0.2",
        "TRAINING_STOP_JOBS_ON_SHUTDOWN": "true",
        **env,
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRAINING_")}
    environment.update(settings, COLORIZERS_DEVICE="cpu")
    log = open(root / "service.log", "ab")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, "-m", "training", "serve"], cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (root / "service.log").read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the training service did not start in 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_until_ended(url: str, job_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if job["ended"] is not None:
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not end in {timeout} s: {job}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("training")
    with training_service(root, TRAINING_CANCEL_GRACE_SECONDS="30") as url:
        yield url, root


def test_a_short_job_trains_packages_and_lists_its_artifacts(service):
    url, root = service
    store = root / "model_store"
    response = httpx.post(f"{url}/v1/jobs", json={**TINY_JOB, "steps": 3, "name": "beta-trial"}, timeout=10)
    assert response.status_code == 201, response.text
    job = wait_until_ended(url, response.json()["id"], timeout=180)
    assert job["state"] == "succeeded", json.dumps(job, indent=1)

    assert job["progress"]["step"] == 3 and job["progress"]["status"] == "finished"
    assert job["metrics"]["val_delta_e00"] > 0 and job["exit_code"] == 0
    assert job["registration"]["status"] == "skipped" and job["warnings"] == []
    artifacts = job["artifacts"]
    assert artifacts["weights"] == str(store / "weights" / "beta-trial.safetensors")
    assert artifacts["archive"] == str(store / "beta-trial.mar")
    assert artifacts["metrics"]["val_delta_e00"] > 0

    model, sidecar = weights.load("beta-trial", store / "weights")
    assert model.model_id == "wallner-beta" and sidecar["name"] == "beta-trial" and sidecar["job"] == job["id"]
    assert sidecar["variant"] == "tiny" and sidecar["steps"] == 3 and sidecar["provenance"] == "trained"
    manifest = describe(store / "beta-trial.mar")
    assert manifest["model"]["modelName"] == "beta-trial"
    assert manifest["model"]["modelVersion"] == artifacts["archive_version"]

    listed = httpx.get(f"{url}/v1/artifacts", timeout=10).json()
    assert [w["name"] for w in listed["weights"]] == ["beta-trial"]
    [archive] = listed["archives"]
    assert archive["version"] == artifacts["archive_version"] and archive["sidecar"]["job"] == job["id"]
    assert [j["state"] for j in httpx.get(f"{url}/v1/jobs", timeout=10).json()["jobs"]] == ["succeeded"]


def test_a_running_job_is_cancelled_and_its_processes_end(service):
    url, root = service
    job = httpx.post(f"{url}/v1/jobs", json={**TINY_JOB, "minutes": 30}, timeout=10).json()
    deadline = time.monotonic() + 120
    while (job.get("progress") or {}).get("step", 0) < 1:  # the trainer is in its loop (its SIGTERM handler set)
        assert job["state"] == "running", json.dumps(job, indent=1)
        assert time.monotonic() < deadline, "the trainer made no step in 120 s"
        time.sleep(0.3)
        job = httpx.get(f"{url}/v1/jobs/{job['id']}", timeout=10).json()

    cancelled = httpx.delete(f"{url}/v1/jobs/{job['id']}", timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    job = wait_until_ended(url, job["id"], timeout=60)
    assert job["state"] == "cancelled"
    assert job["exit_code"] == 3 and job["progress"]["status"] == "stopped"  # stopped after a step, checkpointed
    with pytest.raises(ProcessLookupError):
        os.killpg(job["pid"], 0)
    assert not (root / "model_store" / "weights" / "wallner-beta.json").exists()
    assert job["artifacts"]["archive"] is None


@pytest.mark.skipif(not shutil.which("java"), reason="TorchServe needs Java 17")
def test_a_finished_job_registers_its_archive_with_torchserve(tmp_path):
    store = tmp_path / "model_store"  # TorchServe's allowed_urls only accept archives in a model[-_]store folder
    store.mkdir()
    torchserve = TorchServe(store, [], tmp_path / "ts").start(timeout=120)
    try:
        with training_service(tmp_path, TRAINING_TORCHSERVE_MANAGEMENT_URL=torchserve.management_url) as url:
            job = httpx.post(f"{url}/v1/jobs", json={**TINY_JOB, "steps": 2}, timeout=10).json()
            job = wait_until_ended(url, job["id"], timeout=240)
        assert job["state"] == "succeeded", json.dumps(job, indent=1)
        version = job["artifacts"]["archive_version"]
        assert job["registration"] == {
            "status": "registered",
            "detail": None,
            "version": version,
            "url": torchserve.management_url,
        }
        assert job["artifacts"]["registered_version"] == version
        described = httpx.get(f"{torchserve.management_url}/models/wallner-beta", timeout=10).json()
        assert described[0]["modelVersion"] == version
        answer = httpx.post(f"{torchserve.inference_url}/predictions/wallner-beta", content=to_bytes(make_photo()))
        assert answer.status_code == 200, answer.text
        assert Image.open(io.BytesIO(answer.content)).mode == "RGB"
    finally:
        torchserve.stop()
