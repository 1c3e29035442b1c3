"""Model registry: every colourisation family registers itself here; everything else calls create_model()."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

VARIANTS = ("tiny", "compact", "full")


@dataclass(frozen=True)
class ModelSpec:
    """What the platform knows about one catalogue id, independent of any weights."""

    id: str
    family: str
    description: str
    builder: Callable[..., nn.Module]
    variants: Mapping[str, Mapping[str, Any]]
    working_size: int = 256
    supports_hints: bool = False
    supports_seed: bool = False
    supports_reference: bool = False  # takes a colour reference photo (``predict_ab(..., reference=lab)``)
    needs_reference: bool = False  # serving refuses a request without one (the model exists to follow it)
    served: bool = True
    paper: str = ""
    published_checkpoint: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def model_args(self, variant: str | None = "compact", **overrides: Any) -> dict[str, Any]:
        if variant is None:  # the caller gives every argument (e.g. from a weights sidecar)
            return dict(overrides)
        if variant not in self.variants:
            raise KeyError(f"model {self.id!r} has no {variant!r} variant (has: {', '.join(self.variants)})")
        return {**self.variants[variant], **overrides}


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    id: str,
    *,
    family: str,
    description: str,
    variants: Mapping[str, Mapping[str, Any]],
    **spec_fields: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class/function decorator: ``@register_model("zhang-eccv16", family=..., variants={...})``."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if id in _REGISTRY:
            raise ValueError(f"model id {id!r} is registered twice")
        missing = {"tiny", "compact"} - set(variants)
        if missing:
            raise ValueError(f"model {id!r} must define variants {sorted(missing)}")
        _REGISTRY[id] = ModelSpec(
            id=id, family=family, description=description, builder=builder, variants=variants, **spec_fields
        )
        return builder

    return decorate


def get_spec(name: str) -> ModelSpec:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}") from None


def list_models(served_only: bool = False) -> list[ModelSpec]:
    _load_families()
    specs = sorted(_REGISTRY.values(), key=lambda s: s.id)
    return [s for s in specs if s.served or not served_only]


def create_model(name: str, variant: str | None = "compact", **overrides: Any) -> nn.Module:
    """Build an untrained model; ``model.model_id`` and ``model.model_args`` record how.

    ``variant=None`` builds from ``overrides`` alone (the exact ``model_args`` a sidecar recorded).
    """
    spec = get_spec(name)
    args = spec.model_args(variant, **overrides)
    model = spec.builder(**args)
    model.model_id = name  # type: ignore[assignment]
    model.model_args = args  # type: ignore[assignment]
    return model


def _load_families() -> None:
    from colorizers import models  # noqa: F401  (importing registers every family)
