"""Build versioned TorchServe archives (.mar) from weights + sidecar, and register them with TorchServe."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml
from model_archiver.model_archiver_config import ModelArchiverConfig
from model_archiver.model_packaging import generate_model_archive
from safetensors.torch import save_file

import colorizers
from colorizers import weights

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
HANDLER = REPO / "services" / "handler.py"
DEFAULT_STORE = REPO / "model_store"

# model-config.yaml defaults, for CPU nodes; a GPU node gets more workers and bigger batches through the options.
# No batching on a CPU: a worker on one core gains nothing from a batch, and waiting up to maxBatchDelay for one
# cost throughput (5.3 against 3.5 requests a second at 4 clients, docs/benchmarks.md).
DEFAULT_MODEL_CONFIG: dict[str, Any] = {
    "minWorkers": 1,
    "maxWorkers": 1,
    "batchSize": 1,
    "maxBatchDelay": 20,
    "responseTimeout": 120,
    "startupTimeout": 120,
    "deviceType": "cpu",
}


def version_of(meta: dict[str, Any]) -> str:
    """Archive version from the sidecar's creation time: 2026-11-23T10:15:00+00:00 -> 20261123.101500."""
    stamp = str(meta.get("created", "1970-01-01T00:00:00"))[:19]
    date, _, time = stamp.partition("T")
    return f"{date.replace('-', '')}.{time.replace(':', '') or '000000'}"


def model_config(**overrides: Any) -> dict[str, Any]:
    unknown = set(overrides) - set(DEFAULT_MODEL_CONFIG)
    if unknown:
        raise ValueError(f"unknown model-config keys: {', '.join(sorted(unknown))}")
    return {**DEFAULT_MODEL_CONFIG, **{k: v for k, v in overrides.items() if v is not None}}


def build_archive(
    name: str,
    *,
    weights_dir: str | Path | None = None,
    export_dir: str | Path = DEFAULT_STORE,
    handler: str | Path = HANDLER,
    **config_overrides: Any,
) -> Path:
    """Write ``<export_dir>/<name>.mar``: handler, the colorizers package, weights, sidecar, model-config.yaml."""
    directory = weights.weights_dir(weights_dir)
    meta = weights.read_sidecar(name, directory)
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"mar-{name}-") as tmp:
        staging = Path(tmp) / "files"
        shutil.copytree(
            Path(colorizers.__file__).parent, staging / "colorizers", ignore=shutil.ignore_patterns("__pycache__")
        )
        state, full_meta = weights.joined(name, directory)  # the frozen backbone joined in: self-contained
        save_file(state, str(staging / f"{name}.safetensors"), metadata={"name": name})
        (staging / f"{name}.json").write_text(json.dumps(full_meta, indent=2, sort_keys=True) + "\n")
        config_file = Path(tmp) / "model-config.yaml"
        config_file.write_text(yaml.safe_dump(model_config(**config_overrides), sort_keys=False))
        generate_model_archive(
            ModelArchiverConfig(
                model_name=name,
                handler=str(handler),
                version=version_of(meta),
                extra_files=str(staging),
                export_path=str(export_dir),
                config_file=str(config_file),
                force=True,
            )
        )
    archive = export_dir / f"{name}.mar"
    log.info("built %s (version %s, %.1f MB)", archive, version_of(meta), archive.stat().st_size / 1e6)
    return archive


def register(management_url: str, archive: Path, *, workers: int = 1, timeout: float = 300.0) -> str:
    """Register an archive that sits in TorchServe's model store and make its version the default.

    Returns the registered version. A version that is already registered is left as it is.
    """
    name = archive.stem
    with httpx.Client(base_url=management_url.rstrip("/"), timeout=timeout) as client:
        response = client.post(
            "/models",
            params={"url": archive.name, "model_name": name, "initial_workers": workers, "synchronous": "true"},
        )
        if response.status_code not in (200, 201, 409):
            raise RuntimeError(f"TorchServe refused {archive.name}: {response.status_code} {response.text[:300]}")
        described = client.get(f"/models/{name}/all").json()
        version = max((str(m.get("modelVersion")) for m in described), key=_version_key)
        client.put(f"/models/{name}/{version}/set-default").raise_for_status()
    log.info("registered %s version %s", name, version)
    return version


def _version_key(version: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in version.split("."))
    except ValueError:
        return (0.0,)


def main(args: Any) -> int:
    """``python -m training package``: build one or every archive, optionally register them."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    store = Path(args.model_store) if args.model_store else DEFAULT_STORE
    config = {"deviceType": args.device_type, "batchSize": args.batch_size}
    if args.workers:
        config.update(minWorkers=args.workers, maxWorkers=args.workers)
    names = list(weights.available(args.weights_dir)) if args.name == "all" else [args.name]
    if not names:
        print(f"package: no weights in {weights.weights_dir(args.weights_dir)}; nothing to build")
        return 0
    try:
        archives = [build_archive(n, weights_dir=args.weights_dir, export_dir=store, **config) for n in names]
    except weights.WeightsError as exc:
        print(f"package: {exc}")
        return 2
    for archive in archives:
        print(f"built {archive}")
        if args.register:
            print(f"registered {archive.stem} version {register(args.register, archive)}")
    return 0


def import_main(args: Any) -> int:
    """``python -m training import-weights``: published checkpoint -> "-x" weights, sidecar and archive."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    directory = weights.weights_dir(args.weights_dir)
    try:
        path = weights.import_published(args.family, args.checkpoint, directory, half=getattr(args, "fp16", False))
    except weights.WeightsError as exc:
        print(f"import-weights: {exc}")
        return 2
    print(f"wrote {path} and {path.with_suffix('.json')}")
    if not args.no_archive:
        store = Path(args.model_store) if args.model_store else DEFAULT_STORE
        print(f"built {build_archive(path.stem, weights_dir=directory, export_dir=store)}")
    return 0


def describe(archive: Path) -> dict[str, Any]:
    """The MANIFEST.json of a built archive (for tests and tooling)."""
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        return json.loads(zf.read("MAR-INF/MANIFEST.json"))
