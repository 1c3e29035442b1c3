"""Weights on disk: safetensors + JSON sidecar, and importers for published checkpoints."""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from colorizers.registry import ModelSpec, create_model, get_spec

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "model_store" / "weights"

# Published checkpoints that can be imported as "<architecture>-x" models (full variant, exact layout).
IMPORTABLE = ("zhang-eccv16", "zhang-siggraph17", "deoldify-artistic", "deoldify-stable")

# Buffers that must stay in float32 even in an fp16 file (integer counters are never cast).
_KEEP_FP32_SUFFIXES = ("running_var", "running_mean", "weight_u", "weight_v")


class WeightsError(ValueError):
    """A weights file or checkpoint that cannot be used, with the reason."""


def weights_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The weights directory: explicit path, else ``COLORIZERS_WEIGHTS_DIR``, else the repo's model store."""
    return Path(path or os.environ.get("COLORIZERS_WEIGHTS_DIR") or DEFAULT_WEIGHTS_DIR)


def available(directory: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Sidecars of every weights file in the directory, by served name."""
    found = {}
    for sidecar in sorted(weights_dir(directory).glob("*.json")):
        if sidecar.with_suffix(".safetensors").exists():
            meta = json.loads(sidecar.read_text())
            found[meta["name"]] = meta
    return found


def save(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    name: str | None = None,
    half: bool = True,
    **meta: Any,
) -> Path:
    """Write ``<name>.safetensors`` + ``<name>.json``; returns the safetensors path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    architecture = model.model_id
    name = name or architecture
    state = {
        key: (t.half() if half and t.is_floating_point() and not key.endswith(_KEEP_FP32_SUFFIXES) else t)
        .detach()
        .cpu()
        .contiguous()
        for key, t in model.state_dict().items()
    }
    path = directory / f"{name}.safetensors"
    save_file(state, str(path), metadata={"name": name, "architecture": architecture})
    spec = get_spec(architecture)
    sidecar = {
        "name": name,
        "architecture": architecture,
        "family": spec.family,
        "variant": meta.pop("variant", None),
        "model_args": model.model_args,
        "dtype": "float16" if half else "float32",
        "provenance": meta.pop("provenance", "trained"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "bytes": path.stat().st_size,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **meta,
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return path


def working_size(sidecar: Mapping[str, Any], spec: ModelSpec) -> int:
    """The side of the grey picture a model gets: the size its weights were trained at, else its family's."""
    return int(sidecar.get("working_size") or spec.working_size)


def read_sidecar(name: str, directory: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    path = weights_dir(directory) / f"{name}.json"
    if not path.exists():
        raise WeightsError(f"no weights for model {name!r} in {path.parent}")
    return json.loads(path.read_text())


def load(name: str, directory: str | os.PathLike[str] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the model a sidecar describes and load its weights (strict). Returns (model in eval mode, sidecar)."""
    meta = read_sidecar(name, directory)
    model = create_model(meta["architecture"], None, **meta["model_args"])
    state = load_file(str(weights_dir(directory) / f"{name}.safetensors"))
    load_state(model, state)
    model.eval()
    return model, meta


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Strict load that casts each tensor to the model's dtype and names what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        ]
        raise WeightsError(f"weights do not fit {model.model_id}: " + "; ".join(parts))
    model.load_state_dict({k: state[k].to(own[k].dtype) for k in own}, strict=True)


def read_published_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a published ``.pth`` without unpickling code (``weights_only=True``); unwraps ``{"model": ...}``."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad or unsafe files
        raise WeightsError(f"cannot read checkpoint {path}: {exc}") from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def import_published(
    architecture: str, checkpoint: str | os.PathLike[str], directory: str | os.PathLike[str], *, half: bool = True
) -> Path:
    """Convert a published checkpoint into ``<architecture>-x`` weights + sidecar in ``directory``."""
    if architecture not in IMPORTABLE:
        raise WeightsError(f"no published checkpoint is known for {architecture!r}; importable: {', '.join(IMPORTABLE)}")
    model = create_model(architecture, "full")
    load_state(model, read_published_checkpoint(checkpoint))
    return save(
        model,
        directory,
        name=f"{architecture}-x",
        half=half,
        variant="full",
        provenance="imported",
        source=get_spec(architecture).published_checkpoint or Path(checkpoint).name,
        checkpoint_file=Path(checkpoint).name,
    )
