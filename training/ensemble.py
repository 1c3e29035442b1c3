"""An ensemble of classifiers trained apart on the one frozen encoder: ``zhang-eccv16`` as the mixture of its members.

A compact classification model trained for minutes on a few hundred photos differs much from one training to the
next (another seed, another photo list), and each is confidently wrong in places of its own. The mixture of their
bin distributions is sure where they agree and spread where they do not, so its annealed mean falls towards grey
there, which is what a model must do on kinds of photos it has not seen. The members share the encoder pass; each
adds its head. Calibrate the ensemble afterwards (``python -m training calibrate``): its decoding is its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from colorizers import create_model, weights
from colorizers.models.pretrained import load_encoder_weights

MODEL_ID = "zhang-eccv16"
_SHARED_ARGS = ("backbone", "width")  # what every member must have in common
_MEMBER_FIELDS = ("created", "steps", "train_seconds", "hardware", "data_manifest_sha256", "metrics", "recipe")


class EnsembleError(ValueError):
    """The members cannot be joined; the message says why."""


def join(member_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write ``zhang-eccv16`` weights into ``out`` whose classifiers are those of the weights in ``member_dirs`` (each
    a folder with ``zhang-eccv16.safetensors`` and its sidecar; an ensemble brings all of its members)."""
    if len(member_dirs) < 2:
        raise EnsembleError("an ensemble needs the weights of at least two trainings")
    loaded = [weights.load(MODEL_ID, directory) for directory in member_dirs]
    first_args = loaded[0][0].model_args
    for (model, meta), directory in zip(loaded, member_dirs, strict=True):
        if meta["architecture"] != MODEL_ID or not hasattr(model, "classifiers"):
            raise EnsembleError(f"{directory}: not a compact {MODEL_ID} (on the pretrained encoder)")
        differs = [k for k in _SHARED_ARGS if model.model_args.get(k) != first_args.get(k)]
        if differs:
            raise EnsembleError(f"{directory}: its {', '.join(differs)} differ from the first member's")
    classifiers = [c for model, _ in loaded for c in model.classifiers]
    args = {k: first_args[k] for k in _SHARED_ARGS}
    ensemble = create_model(MODEL_ID, "compact", **args, members=len(classifiers))
    load_encoder_weights(ensemble)
    with torch.no_grad():
        for target, source in zip(ensemble.classifiers, classifiers, strict=True):
            target.load_state_dict(source.state_dict())
        # each member learnt against the rebalancing of its own photo list: the mixture's prior is their mean
        ensemble.log_rebalancing.copy_(torch.stack([m.log_rebalancing.float() for m, _ in loaded]).mean(dim=0))
    metas = [meta for _, meta in loaded]
    members = [m for meta in metas for m in meta.get("members", [_member(meta)])]
    return weights.save(
        ensemble.eval(),
        out,
        name=MODEL_ID,
        half=True,
        variant="compact",
        recipe=f"mixture of {len(members)} trainings of {members[0]['recipe']}",
        steps=sum(m["steps"] for m in members),
        train_seconds=round(sum(m["train_seconds"] for m in members), 1),
        hardware=metas[0].get("hardware"),
        working_size=metas[0].get("working_size"),
        members=members,
    )


def _member(meta: dict[str, Any]) -> dict[str, Any]:
    return {key: meta.get(key) for key in _MEMBER_FIELDS} | {"seed": meta.get("training", {}).get("seed")}


def main(args: Any) -> int:
    try:
        path = join(args.members, args.out)
    except (EnsembleError, weights.WeightsError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {path}; calibrate it: python -m training calibrate --models {MODEL_ID} --weights-dir {args.out}")
    return 0
