"""Request and response bodies of the training API (they are also its OpenAPI schema at ``/docs``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from colorizers.registry import list_models
from training.recipes import RECIPES
from training.service.jobs import State

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # a TorchServe model name and a file name


class JobRequest(BaseModel):
    """Body of ``POST /v1/jobs``: what to train, for how long (exactly one of minutes or steps), how to serve it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="catalogue id with a training recipe", examples=["wallner-beta"])
    variant: str = Field("compact", description="model size: tiny, compact or full (where the model has it)")
    minutes: float | None = Field(None, ge=0.1, le=10080, description="wall-clock budget")
    steps: int | None = Field(None, ge=1, le=10_000_000, description="optimisation steps")
    batch_size: int | None = Field(None, ge=1, le=4096, description="default: the recipe's")
    lr: float | None = Field(None, gt=0, le=1, description="main learning rate; default: the recipe's")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    synthetic: int | None = Field(
        None, ge=1, le=100_000, description="train on this many generated pictures instead of the data set"
    )
    name: str | None = Field(None, pattern=NAME_PATTERN, description="served name; default: the model id")
    register_version: bool = Field(
        True, alias="register", description="register the archive with TorchServe (when the service knows one)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> JobRequest:
        if (self.minutes is None) == (self.steps is None):
            raise ValueError("give exactly one budget: minutes or steps")
        if self.model not in RECIPES:
            raise ValueError(f"no training recipe for model {self.model!r}; models: {', '.join(sorted(RECIPES))}")
        variants = next(s.variants for s in list_models() if s.id == self.model)
        if self.variant not in variants:
            raise ValueError(f"model {self.model!r} has no {self.variant!r} variant (has: {', '.join(variants)})")
        if self.name is None:
            self.name = self.model
        elif self.name != self.model and self.name in _reserved_names():
            raise ValueError(f"name {self.name!r} belongs to another model; pick another served name")
        return self


def _reserved_names() -> set[str]:
    """Catalogue ids and the ``<id>-x`` names of imported published weights."""
    ids = {s.id for s in list_models()}
    return ids | {f"{i}-x" for i in ids}


class Artifacts(BaseModel):
    weights: str | None = Field(None, description="the served weights in MODEL_STORE/weights")
    sidecar: str | None = None
    archive: str | None = Field(None, description="MODEL_STORE/<name>.mar")
    archive_version: str | None = None
    registered_version: str | None = Field(None, description="the version TorchServe serves as default")
    metrics: dict[str, Any] | None = Field(None, description="final validation metrics, as in the sidecar")


class Registration(BaseModel):
    status: Literal["pending", "skipped", "registered", "failed"] = "pending"
    detail: str | None = None
    version: str | None = None
    url: str | None = None


class JobSummary(BaseModel):
    id: str
    state: State
    model: str
    variant: str
    name: str = Field(description="served name")
    request: dict[str, Any]
    created: str
    started: str | None = None
    ended: str | None = None
    queue_position: int | None = Field(None, description="0: next to start (queued jobs only)")
    pid: int | None = None
    exit_code: int | None = None
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    progress: dict[str, Any] | None = Field(None, description="the trainer's progress.json, without validations")
    metrics: dict[str, Any] | None = Field(None, description="the latest validation")
    artifacts: Artifacts
    registration: Registration


class JobDetail(JobSummary):
    metrics_history: list[dict[str, Any]] = Field(default_factory=list, description="every validation so far")
    log_tail: list[str] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list, description="the training process's command line")
    run_dir: str
    log: str


class JobList(BaseModel):
    jobs: list[JobSummary]
