"""A finished job's artifacts: weights into the store, the archive beside them, TorchServe registration; listing.

Weights and sidecar take their final names atomically: TorchServe and the gateway never read half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from colorizers.registry import get_spec
from training.calibrate import calibrate
from training.package import build_archive, register, version_of
from training.service.jobs import Job, job_files, read_json, write_json
from training.service.schemas import Registration
from training.settings import Settings

log = logging.getLogger(__name__)


def publish_weights(staging: Path, model: str, name: str, weights_dir: Path, job_id: str) -> tuple[Path, dict]:
    """Copy the trainer's weights + sidecar into the weights folder under the served name (each file atomically)."""
    source = staging / f"{model}.safetensors"
    sidecar = json.loads((staging / f"{model}.json").read_text())
    sidecar.update(name=name, job=job_id)
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / f"{name}.safetensors"
    tmp = weights_dir / f".{name}.safetensors.{job_id}.tmp"
    if name == model:
        shutil.copyfile(source, tmp)
    else:
        with safe_open(str(source), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        save_file(load_file(str(source)), str(tmp), metadata={**metadata, "name": name})
    sidecar["bytes"] = tmp.stat().st_size
    os.replace(tmp, target)
    write_json(target.with_suffix(".json"), sidecar)
    return target, sidecar


def register_archive(settings: Settings, archive: Path) -> dict[str, Any]:
    """Register with TorchServe's management API; the outcome as a registration record (never raises)."""
    url = settings.torchserve_management_url
    if url is None:
        return Registration(status="skipped", detail="TRAINING_TORCHSERVE_MANAGEMENT_URL is not set").model_dump()
    try:
        version = register(url, archive, workers=settings.register_workers, timeout=settings.register_timeout_seconds)
    except Exception as exc:
        detail = f"registering {archive.name} with TorchServe at {url} failed: {type(exc).__name__}: {exc}"
        log.warning("%s", detail)
        return Registration(status="failed", detail=detail, url=url).model_dump()
    return Registration(status="registered", version=version, url=url).model_dump()


def package_job(job: Job, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Weights into the store, the archive beside them, the registration: (artifacts, registration)."""
    files = job_files(job, settings)
    weights_path, sidecar = publish_weights(files.staging, job.model, job.name, settings.weights_dir, job.id)
    calibration_photos = settings.data_dir / "unseen_photos"
    calibration = None
    if sidecar.get("backbone") and not get_spec(job.model).needs_reference and calibration_photos.is_dir():
        # A compact model decodes with a floor and gain fitted on the held-out-package photos.
        calibration = calibrate(job.name, calibration_photos, settings.weights_dir)["chosen"]
    archive = build_archive(job.name, weights_dir=settings.weights_dir, export_dir=settings.model_store)
    artifacts = {
        "weights": str(weights_path),
        "sidecar": str(weights_path.with_suffix(".json")),
        "archive": str(archive),
        "archive_version": version_of(sidecar),
        "metrics": sidecar.get("metrics"),
        "calibration": calibration,
    }
    if job.request.get("register", True):
        registration = register_archive(settings, archive)
    else:
        registration = Registration(status="skipped", detail="the job asked not to register").model_dump()
    return artifacts, registration


def archive_version(archive: Path) -> str | None:
    """The model version in an archive's manifest (None when it is not a readable archive)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            return json.loads(zf.read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def list_artifacts(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Weights (with their sidecars) and archives (with their manifest and the sidecar inside) in the store."""
    weights = []
    for sidecar_path in sorted(settings.weights_dir.glob("*.json")):
        path = sidecar_path.with_suffix(".safetensors")
        if not path.exists():
            continue
        entry: dict[str, Any] = {"name": sidecar_path.stem, "file": str(path), "bytes": path.stat().st_size}
        sidecar = read_json(sidecar_path)
        entry.update({"sidecar": sidecar} if sidecar is not None else {"error": "unreadable sidecar"})
        weights.append(entry)
    archives = []
    for path in sorted(settings.model_store.glob("*.mar")):
        stat = path.stat()
        entry = {
            "name": path.stem,
            "file": str(path),
            "bytes": stat.st_size,
            "modified": dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            with zipfile.ZipFile(path) as zf:
                manifest = json.loads(zf.read("MAR-INF/MANIFEST.json"))
                model = manifest.get("model", {})
                name = model.get("modelName", path.stem)
                inside = set(zf.namelist())
                sidecar = json.loads(zf.read(f"{name}.json")) if f"{name}.json" in inside else None
            entry.update(name=name, version=model.get("modelVersion"), handler=model.get("handler"), sidecar=sidecar)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            entry["error"] = f"unreadable archive: {exc}"
        archives.append(entry)
    return {"weights": weights, "archives": archives}
