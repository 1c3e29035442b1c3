"""Training HTTP API with the real app: validation, 404s, queue, cancel, failures, restart, artifacts, settings."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors import safe_open

from colorizers import create_model, weights
from tests.helpers import free_port
from training.__main__ import build_parser
from training.service.api import create_app
from training.service.artifacts import publish_weights
from training.service.jobs import Job, job_files, train_command
from training.settings import Settings

# A stand-in for `python -m training train`: writes progress.json and a log line, then sleeps, fails or ignores
# SIGTERM (after starting a child in its process group, whose pid it writes to child.pid).
FAKE_TRAINER = """
import json, os, signal, subprocess, sys, time
run_dir, mode = sys.argv[1], sys.argv[2]
os.makedirs(run_dir, exist_ok=True)
progress = {"status": "running", "step": 3, "total_steps": 10, "fraction": 0.3, "losses": {"mse": 0.5},
            "val": {"step": 3, "val_delta_e00": 12.5}, "val_history": [{"step": 3, "val_delta_e00": 12.5}]}
with open(os.path.join(run_dir, "progress.json"), "w") as f:
    json.dump(progress, f)
print("fake trainer at step 3", flush=True)
if mode == "fail":
    print("ValueError: the fake trainer broke", file=sys.stderr, flush=True)
    sys.exit(1)
if mode == "exit0":
    sys.exit(0)
if mode == "ignore-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(run_dir, "child.pid"), "w") as f:
        f.write(str(child.pid))
time.sleep(120)
"""

JOB = {"model": "wallner-beta", "variant": "tiny", "steps": 10, "synthetic": 8}


def fake(mode: str) -> Callable[[Job, Settings], list[str]]:
    def command(job: Job, settings: Settings) -> list[str]:
        return [sys.executable, "-c", FAKE_TRAINER, str(job_files(job, settings).run_dir), mode]

    return command


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model_store": tmp_path / "model_store",
        "data_dir": tmp_path / "data",
        "runs_dir": tmp_path / "runs",
        "poll_seconds": 0.05,
        "cancel_grace_seconds": 2.0,
        "stop_jobs_on_shutdown": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Start apps (``start(mode, **settings)``) that stop when the test ends; stopping ends their fake trainers."""
    clients: list[TestClient] = []

    def _start(mode: str = "sleep", **overrides: object) -> TestClient:
        client = TestClient(create_app(make_settings(tmp_path, **overrides), command=fake(mode)))
        client.__enter__()
        clients.append(client)
        return client

    yield _start
    for client in reversed(clients):
        client.__exit__(None, None, None)


def wait_for(client: TestClient, job_id: str, done: Callable[[dict], bool], timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job never reached the expected state: {job}"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """No such process, or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def assert_error(response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    for word in words:
        assert word in body["error"]["message"], body


# --- validation and 404s -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, ["model", "Field required"]),
        ({"model": "wallner-beta", "synthetic": 8}, ["exactly one budget"]),
        ({**JOB, "minutes": 5}, ["exactly one budget"]),
        ({**JOB, "steps": 0}, ["steps"]),
        ({**JOB, "steps": 10**8}, ["steps"]),
        ({"model": "wallner-beta", "minutes": 0.01}, ["minutes"]),
        ({"model": "wallner-beta", "minutes": 20000}, ["minutes"]),
        ({**JOB, "model": "no-such-model"}, ["no training recipe", "wallner-beta"]),
        ({**JOB, "model": "bigcolor", "variant": "full"}, ["no 'full' variant"]),
        ({**JOB, "variant": "huge"}, ["no 'huge' variant"]),
        ({**JOB, "batch_size": 0}, ["batch_size"]),
        ({**JOB, "lr": 0}, ["lr"]),
        ({**JOB, "synthetic": 0}, ["synthetic"]),
        ({**JOB, "name": "../evil"}, ["name"]),
        ({**JOB, "name": "zhang-eccv16"}, ["belongs to another model"]),
        ({**JOB, "name": "wallner-beta-x"}, ["belongs to another model"]),
        ({**JOB, "register": "perhaps"}, ["register"]),
        ({**JOB, "epochs": 3}, ["epochs", "Extra inputs"]),
    ],
)
def test_bad_job_parameters_are_422_with_the_error_body(start, body, words):
    client = start()
    assert_error(client.post("/v1/jobs", json=body), 422, "invalid_request", *words)
    assert client.get("/v1/jobs").json() == {"jobs": []}


def test_a_body_that_is_not_json_is_422(start):
    response = start().post("/v1/jobs", content=b"{steps: 3", headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request")


def test_training_on_a_missing_data_set_is_refused(start, tmp_path):
    response = start().post("/v1/jobs", json={"model": "wallner-beta", "steps": 5})
    assert_error(response, 422, "no_dataset", str(tmp_path / "data"), "python -m training dataset")


def test_unknown_jobs_and_routes_are_404(start):
    client = start()
    for method, path in (("GET", "/v1/jobs/nope"), ("DELETE", "/v1/jobs/nope"), ("POST", "/v1/jobs/nope/register")):
        assert_error(client.request(method, path), 404, "not_found", "nope")
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")


# --- queue, cancel, failure ----------------------------------------------------------------------------------------


def test_jobs_queue_behind_the_concurrency_limit_and_a_queued_job_can_be_cancelled(start):
    client = start()
    first = client.post("/v1/jobs", json=JOB)
    assert first.status_code == 201
    assert first.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    first = first.json()
    assert first["state"] == "running" and first["pid"] and first["name"] == "wallner-beta"
    second = client.post("/v1/jobs", json={**JOB, "name": "beta-two", "register": False}).json()
    assert second["state"] == "queued" and second["queue_position"] == 0 and second["pid"] is None
    assert second["request"]["register"] is False and second["registration"]["status"] == "pending"

    listed = client.get("/v1/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [second["id"], first["id"]]  # newest first
    assert [j["id"] for j in client.get("/v1/jobs", params={"state": "queued"}).json()["jobs"]] == [second["id"]]
    assert_error(client.get("/v1/jobs", params={"state": "sleeping"}), 422, "invalid_request", "state")

    cancelled = client.delete(f"/v1/jobs/{second['id']}").json()
    assert cancelled["state"] == "cancelled" and cancelled["started"] is None and cancelled["ended"]
    assert cancelled["registration"]["status"] == "skipped"
    assert client.delete(f"/v1/jobs/{second['id']}").json()["state"] == "cancelled"  # idempotent

    running = wait_for(client, first["id"], lambda j: j["progress"] is not None)
    assert running["progress"]["step"] == 3 and running["metrics"]["val_delta_e00"] == 12.5
    assert running["metrics_history"] == [{"step": 3, "val_delta_e00": 12.5}]
    assert any("fake trainer at step 3" in line for line in running["log_tail"])

    assert client.delete(f"/v1/jobs/{first['id']}").json()["state"] == "cancelled"
    ended = wait_for(client, first["id"], lambda j: j["ended"] is not None)
    assert ended["exit_code"] == -signal.SIGTERM and gone(first["pid"])
    third = client.post("/v1/jobs", json=JOB).json()
    assert third["state"] == "running"  # the slot is free again
    assert client.get(f"/v1/jobs/{second['id']}").json()["pid"] is None  # the cancelled job never ran


def test_cancel_kills_the_process_group_of_a_trainer_that_ignores_sigterm(start):
    client = start("ignore-sigterm", cancel_grace_seconds=0.5)
    job = client.post("/v1/jobs", json=JOB).json()
    child_file = Path(job["run_dir"]) / "child.pid"
    deadline = time.monotonic() + 20
    while not child_file.exists() or not child_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(child_file.read_text())
    client.delete(f"/v1/jobs/{job['id']}")
    ended = wait_for(client, job["id"], lambda j: j["ended"] is not None)
    assert ended["state"] == "cancelled" and ended["exit_code"] == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while not gone(child):
        assert time.monotonic() < deadline, "the trainer's child survived the cancel"
        time.sleep(0.05)


def test_a_failing_trainer_fails_the_job_with_its_last_words(start):
    client = start("fail")
    job = client.post("/v1/jobs", json=JOB).json()
    failed = wait_for(client, job["id"], lambda j: j["state"] != "running")
    assert failed["state"] == "failed" and failed["exit_code"] == 1
    assert "exited with status 1" in failed["error"] and "ValueError: the fake trainer broke" in failed["error"]
    assert failed["progress"]["step"] == 3
    assert failed["artifacts"]["weights"] is None and failed["artifacts"]["archive"] is None
    assert "fake trainer at step 3" in failed["log_tail"]
    assert_error(client.delete(f"/v1/jobs/{job['id']}"), 409, "conflict", "failed")
    assert_error(client.post(f"/v1/jobs/{job['id']}/register"), 409, "conflict")
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["jobs"]["failed"] == 1


# --- restart ---------------------------------------------------------------------------------------------------


def _record(settings: Settings, job_id: str, **fields: object) -> Path:
    record = {"id": job_id, "request": {**JOB, "name": "wallner-beta", "register": True}, **fields}
    path = settings.jobs_dir / job_id / "job.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    return path


def test_a_restarted_service_lists_past_jobs_settles_dead_ones_and_adopts_live_ones(start, tmp_path):
    settings = make_settings(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live_root = settings.jobs_dir / "20260101-000003-cccccc"
    live = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(120)", str(live_root)])
    try:
        _record(settings, "20260101-000001-aaaaaa", created="2026-01-01T00:00:01", state="running", pid=dead.pid)
        _record(settings, "20260101-000002-bbbbbb", created="2026-01-01T00:00:02", state="queued")
        _record(settings, "20260101-000003-cccccc", created="2026-01-01T00:00:03", state="running", pid=live.pid)
        _record(settings, "20260101-000004-dddddd", created="2026-01-01T00:00:04", state="succeeded")
        (settings.jobs_dir / "broken").mkdir()
        (settings.jobs_dir / "broken" / "job.json").write_text("{not json")

        client = start(max_concurrent_jobs=2)
        wait_for(client, "20260101-000002-bbbbbb", lambda j: j["state"] != "queued")
        jobs = {j["id"]: j for j in client.get("/v1/jobs").json()["jobs"]}
        assert len(jobs) == 4
        assert jobs["20260101-000001-aaaaaa"]["state"] == "failed"
        assert "not watching" in jobs["20260101-000001-aaaaaa"]["error"]
        assert jobs["20260101-000003-cccccc"]["state"] == "running"  # adopted: its command line names its folder
        assert jobs["20260101-000002-bbbbbb"]["state"] == "running"  # queued again, and the second slot was free
        assert jobs["20260101-000004-dddddd"]["state"] == "succeeded"

        client.delete("/v1/jobs/20260101-000003-cccccc")
        live.wait(timeout=10)  # SIGTERM from the service; reaping it here lets the service see it gone
        adopted = wait_for(client, "20260101-000003-cccccc", lambda j: j["ended"] is not None)
        assert adopted["state"] == "cancelled" and adopted["exit_code"] is None
        on_disk = json.loads((live_root / "job.json").read_text())
        assert on_disk["state"] == "cancelled" and on_disk["ended"]
    finally:
        live.kill()
        live.wait()


def test_a_trainer_that_ends_well_without_weights_fails_the_job(start):
    client = start("exit0")
    job = client.post("/v1/jobs", json=JOB).json()
    failed = wait_for(client, job["id"], lambda j: j["ended"] is not None)
    assert failed["state"] == "failed" and failed["exit_code"] == 0 and "without writing weights" in failed["error"]


def test_registering_again_records_an_unreachable_torchserve_as_a_warning(start, tmp_path):
    settings = make_settings(tmp_path)
    archive = settings.model_store / "wallner-beta.mar"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        manifest = {"model": {"modelName": "wallner-beta", "modelVersion": "1.0"}}
        zf.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
    artifacts = {"archive": str(archive), "archive_version": "1.0"}
    _record(settings, "j-ok", created="1", state="succeeded", artifacts=artifacts)
    _record(settings, "j-old", created="2", state="succeeded", artifacts={**artifacts, "archive_version": "0.9"})

    assert_error(start().post("/v1/jobs/j-ok/register"), 409, "conflict", "TRAINING_TORCHSERVE_MANAGEMENT_URL")
    client = start(torchserve_management_url=f"http://127.0.0.1:{free_port()}")
    job = client.post("/v1/jobs/j-ok/register").json()
    assert job["state"] == "succeeded" and job["registration"]["status"] == "failed"
    assert job["artifacts"]["registered_version"] is None
    [warning] = job["warnings"]
    assert "wallner-beta.mar" in warning and "ConnectError" in warning
    assert_error(client.post("/v1/jobs/j-old/register"), 409, "conflict", "no longer this job's archive")


# --- packaging pieces, artifacts, settings, command line -----------------------------------------------------------


def test_published_weights_take_the_served_name(tmp_path):
    staging, store = tmp_path / "staging", tmp_path / "weights"
    weights.save(create_model("wallner-beta", "tiny"), staging, variant="tiny")
    path, sidecar = publish_weights(staging, "wallner-beta", "beta-trial", store, "job-1")
    assert path == store / "beta-trial.safetensors" and sorted(p.name for p in store.iterdir()) == [
        "beta-trial.json",
        "beta-trial.safetensors",
    ]
    assert sidecar["name"] == "beta-trial" and sidecar["architecture"] == "wallner-beta" and sidecar["job"] == "job-1"
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["name"] == "beta-trial"
    model, meta = weights.load("beta-trial", store)
    assert meta == sidecar and model.model_id == "wallner-beta"


def test_artifacts_list_weights_and_archives_with_their_facts(start, tmp_path):
    settings = make_settings(tmp_path)
    weights.save(create_model("wallner-beta", "tiny"), settings.weights_dir, variant="tiny", steps=7)
    sidecar = (settings.weights_dir / "wallner-beta.json").read_text()
    with zipfile.ZipFile(settings.model_store / "wallner-beta.mar", "w") as zf:
        manifest = {"model": {"modelName": "wallner-beta", "modelVersion": "20260101.000000", "handler": "handler.py"}}
        zf.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        zf.writestr("wallner-beta.json", sidecar)
    (settings.model_store / "broken.mar").write_bytes(b"not a zip")

    body = start().get("/v1/artifacts").json()
    [entry] = body["weights"]
    assert entry["name"] == "wallner-beta" and entry["bytes"] > 0
    assert entry["sidecar"]["variant"] == "tiny" and entry["sidecar"]["steps"] == 7
    archives = {a["name"]: a for a in body["archives"]}
    assert archives["wallner-beta"]["version"] == "20260101.000000"
    assert archives["wallner-beta"]["sidecar"]["architecture"] == "wallner-beta"
    assert "unreadable" in archives["broken"]["error"]


def test_settings_come_from_training_environment_variables(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAINING_PORT", "9123")
    monkeypatch.setenv("TRAINING_RUNS_DIR", "my-runs")
    monkeypatch.setenv("TRAINING_TORCHSERVE_MANAGEMENT_URL", "  ")
    monkeypatch.setenv("TRAINING_MAX_CONCURRENT_JOBS", "2")
    settings = Settings()
    assert settings.port == 9123 and settings.host == "127.0.0.1" and settings.max_concurrent_jobs == 2
    assert settings.runs_dir == tmp_path / "my-runs" and settings.jobs_dir == tmp_path / "my-runs" / "jobs"
    assert settings.torchserve_management_url is None
    monkeypatch.setenv("TRAINING_TORCHSERVE_MANAGEMENT_URL", "http://torchserve:8081/")
    assert Settings().torchserve_management_url == "http://torchserve:8081"


def test_the_trainer_command_is_one_the_train_subcommand_accepts(tmp_path):
    settings = make_settings(tmp_path)
    job = Job(
        id="j1",
        created="now",
        request={
            "model": "zhang-eccv16",
            "variant": "tiny",
            "minutes": 2.5,
            "steps": None,
            "batch_size": 4,
            "lr": 3e-4,
            "seed": 7,
            "synthetic": None,
            "name": "zhang-eccv16",
            "register": True,
        },
    )
    command = train_command(job, settings)
    assert command[:4] == [sys.executable, "-m", "training", "train"]
    args = build_parser().parse_args(command[3:])
    assert (args.model, args.variant, args.minutes, args.steps) == ("zhang-eccv16", "tiny", 2.5, None)
    assert (args.batch_size, args.lr, args.seed, args.synthetic) == (4, 3e-4, 7, None)
    assert args.data_dir == settings.data_dir and args.no_progress
    assert args.run_dir == settings.jobs_dir / "j1" and args.out == settings.jobs_dir / "j1" / "weights"
    synthetic = train_command(Job(id="j2", created="now", request={**job.request, "synthetic": 8}), settings)
    assert build_parser().parse_args(synthetic[3:]).synthetic == 8 and "--data-dir" not in synthetic


def test_serve_is_a_subcommand():
    args = build_parser().parse_args(["serve", "--port", "9000"])
    assert args.command == "serve" and args.port == 9000 and args.host is None and callable(args.handler)
