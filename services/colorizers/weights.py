"""Weights on disk: safetensors + JSON sidecar, and importers for published checkpoints."""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from colorizers.backbone import BACKBONES, BackboneError, pretrained_state
from colorizers.conventions import PUBLISHED as PUBLISHED_CONVENTIONS
from colorizers.conventions import Conventions
from colorizers.models.pretrained import ENCODER_PREFIX, backbone_of
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
    architecture = str(model.model_id)
    name = name or architecture
    backbone = backbone_of(model)
    state = {
        key: (t.half() if half and t.is_floating_point() and not key.endswith(_KEEP_FP32_SUFFIXES) else t)
        .detach()
        .cpu()
        .contiguous()
        for key, t in model.state_dict().items()
        if not (backbone and key.startswith(ENCODER_PREFIX))  # the frozen backbone is stored by reference
    }
    if backbone:
        meta.setdefault("backbone", {**BACKBONES[backbone].reference(), "joined": False})
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
    state, meta = joined(name, directory)
    model = create_model(meta["architecture"], None, **meta["model_args"])
    load_state(model, state)
    model.eval()
    return model, meta


def backbone_state(reference: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The frozen backbone a sidecar names, from its installed package, keyed as inside the model."""
    name = reference.get("name")
    if name not in BACKBONES or BACKBONES[name].sha256 != reference.get("sha256"):
        raise WeightsError(f"unknown backbone {reference!r}; known: {', '.join(BACKBONES)}")
    try:
        state = pretrained_state(name)
    except BackboneError as exc:
        raise WeightsError(str(exc)) from exc
    return {ENCODER_PREFIX + key: tensor.contiguous() for key, tensor in state.items()}


def joined(
    name: str, directory: str | os.PathLike[str] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A model's full state (its backbone joined in, as stored) and sidecar: what a self-contained archive holds."""
    meta = read_sidecar(name, directory)
    state = load_file(str(weights_dir(directory) / f"{name}.safetensors"))
    if meta.get("backbone") and not meta["backbone"].get("joined"):
        state.update(backbone_state(meta["backbone"]))
        meta = {**meta, "backbone": {**meta["backbone"], "joined": True}}
    return state, meta


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
    """Read a published ``.pth`` as its authors' code saved it, without unpickling code (``weights_only=True``).

    Accepted: a plain state_dict (``torch.save(model.state_dict())``, Zhang's files), one wrapped as
    ``{"model": ...}`` (fastai's ``learn.save``, DeOldify's files, possibly with an ``"opt"`` entry beside it) or
    ``{"state_dict": ...}``; ``module.`` prefixes (``DataParallel``) are stripped. Anything else is refused with
    the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no checkpoint file {path}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad or unsafe files
        raise WeightsError(
            f"cannot read checkpoint {path}: only tensors and plain containers are read (weights_only), so a file "
            f"that pickles a whole model or code is refused; save its state_dict instead ({exc})"
        ) from exc
    while isinstance(obj, Mapping):
        wrapper = next((w for w in ("model", "state_dict") if isinstance(obj.get(w), Mapping)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path} holds {type(obj).__name__ if obj is not None else 'nothing'}, not a state_dict")
    strays = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if strays:
        more = " ..." if len(strays) > 5 else ""
        raise WeightsError(f"{path} is not a state_dict of tensors; other entries: {', '.join(strays[:5])}{more}")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def fit_published_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A published state_dict as ``model`` keeps it: BatchNorm's ``num_batches_tracked`` counters.

    PyTorch saves a counter beside every BatchNorm's running statistics; Zhang's models here keep none (their
    published layout lists none), so the file's counters are dropped. A model that keeps them (DeOldify) gets its
    own where a file saved by an older PyTorch has none. The counters never change an eval-mode output.
    Everything else must fit exactly (``load_state`` names what does not).
    """
    own = model.state_dict()
    suffix = "num_batches_tracked"

    def counter_of_a_norm(key: str) -> bool:
        return key.endswith("." + suffix) and key.removesuffix(suffix) + "running_mean" in own

    fitted = {k: v for k, v in state.items() if k in own or not counter_of_a_norm(k)}
    fitted.update({k: v for k, v in own.items() if counter_of_a_norm(k) and k not in fitted})
    return fitted


# float16 must not move an imported model's 8-bit output by more than this, on average, on the check picture.
HALF_TOLERANCE_MEAN = 0.5


def check_picture(width: int = 384, height: int = 256) -> Image.Image:
    """A deterministic test photo (smooth gradients, a disc and stripes) for the float16 check."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.45 * np.sin(x / width * 5.0)
    g = 0.5 + 0.45 * np.cos(y / height * 4.0)
    disc = ((x - width * 0.6) ** 2 + (y - height * 0.45) ** 2 < (height / 4) ** 2).astype(np.float32)
    stripes = (np.sin(x / 6.0) > 0).astype(np.float32) * (y > height * 0.75)
    b = 0.2 + 0.6 * disc + 0.2 * stripes
    return Image.fromarray((np.stack([r, g, b], axis=-1).clip(0, 1) * 255).astype(np.uint8), "RGB")


def check_half(model: nn.Module, conventions: Conventions) -> dict[str, Any]:
    """How far rounding the weights to float16 moves ``model``'s colours on the check picture, end to end.

    Both models run in float32 (as ``load`` casts an fp16 file) through the pipeline with ``conventions``;
    returns the mean and largest absolute difference in 8-bit RGB levels.
    """
    import copy

    from colorizers.pipeline import Colorizer  # the pipeline imports this module

    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for key, tensor in rounded.state_dict().items():
            if tensor.is_floating_point() and not key.endswith(_KEEP_FP32_SUFFIXES):
                tensor.copy_(tensor.half().float())
    meta = {"conventions": conventions.as_dict()}
    picture = check_picture()
    outputs = [
        np.asarray(Colorizer(m, meta=meta, device="cpu").colorize(picture), dtype=np.int16) for m in (model, rounded)
    ]
    diff = np.abs(outputs[0] - outputs[1])
    return {
        "picture": f"check_picture() {picture.width}x{picture.height}",
        "mean_abs_rgb": round(float(diff.mean()), 4),
        "max_abs_rgb": int(diff.max()),
        "tolerance_mean": HALF_TOLERANCE_MEAN,
    }


def import_published(
    architecture: str, checkpoint: str | os.PathLike[str], directory: str | os.PathLike[str], *, half: bool = False
) -> Path:
    """Convert a published checkpoint into ``<architecture>-x`` weights + sidecar in ``directory``.

    The weights stay float32 unless ``half``: then float16 is kept only if ``check_half`` finds it harmless
    (its result goes into the sidecar), else ``WeightsError``. The sidecar's ``conventions`` block records how the
    weights must be fed and decoded to compute what their authors' code computes (``colorizers.conventions``).
    """
    if architecture not in IMPORTABLE:
        known = ", ".join(IMPORTABLE)
        raise WeightsError(f"no published checkpoint is known for {architecture!r}; importable: {known}")
    conventions = PUBLISHED_CONVENTIONS[architecture]
    model = create_model(architecture, "full", **conventions.model_args())
    load_state(model, fit_published_state(model, read_published_checkpoint(checkpoint)))
    model.eval()
    spec = get_spec(architecture)
    meta: dict[str, Any] = {"conventions": conventions.as_dict()}
    if conventions.default_size(spec.working_size) != spec.working_size:
        meta["working_size"] = conventions.default_size(spec.working_size)  # for readers that skip conventions
    if half:
        check = check_half(model, conventions)
        if check["mean_abs_rgb"] > HALF_TOLERANCE_MEAN:
            raise WeightsError(
                f"float16 moves {architecture}-x's colours by {check['mean_abs_rgb']:.2f} levels on average "
                f"(largest {check['max_abs_rgb']}) on the check picture, more than {HALF_TOLERANCE_MEAN}; "
                "import it in float32"
            )
        meta["half_check"] = check
    return save(
        model,
        directory,
        name=f"{architecture}-x",
        half=half,
        variant="full",
        provenance="imported",
        source=spec.published_checkpoint or Path(checkpoint).name,
        checkpoint_file=Path(checkpoint).name,
        **meta,
    )
