"""The served models: registry facts + weights sidecars + live readiness."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from colorizers import conventions, weights
from colorizers.registry import get_spec, list_models
from gateway.settings import Settings


@dataclass
class ModelInfo:
    id: str
    architecture: str
    family: str
    description: str
    working_size: int
    supports_hints: bool
    supports_seed: bool
    provenance: str
    supports_reference: bool = False
    needs_reference: bool = False
    backbone: str | None = None
    paper: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    conventions: dict[str, Any] = field(default_factory=dict)  # how the weights expect input and merge (sidecar)
    ready: bool = False
    reason: str = "not checked yet"


def build_catalogue(settings: Settings) -> dict[str, ModelInfo]:
    """Models to serve: ``GATEWAY_MODELS``, else every served registry id plus imported "-x" weights."""
    sidecars = weights.available(settings.weights_dir)
    names = settings.models or sorted({s.id for s in list_models(served_only=True)} | set(sidecars))
    catalogue = {}
    for name in names:
        meta = sidecars.get(name, {})
        spec = get_spec(meta.get("architecture", name))
        catalogue[name] = ModelInfo(
            id=name,
            architecture=spec.id,
            family=spec.family,
            description=spec.description,
            working_size=conventions.working_size(meta, weights.working_size(meta, spec)),
            supports_hints=spec.supports_hints,
            supports_seed=spec.supports_seed,
            supports_reference=spec.supports_reference,
            needs_reference=spec.needs_reference,
            provenance=meta.get("provenance", "untrained"),
            backbone=(meta.get("backbone") or {}).get("name"),
            paper=spec.paper,
            metrics=meta.get("metrics", {}),
            conventions=conventions.Conventions.of(meta).as_dict(),
        )
    return catalogue
