"""Training service settings, read from the environment with the TRAINING_ prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Every knob of ``python -m training serve``; ``TRAINING_<NAME>`` in the environment overrides the default.

    Relative paths are resolved against the working directory when the settings are read, so the training
    processes (which run from the repository root) see the same folders as the service.
    """

    model_config = SettingsConfigDict(env_prefix="TRAINING_", protected_namespaces=())

    host: str = "127.0.0.1"
    port: int = Field(8090, ge=1, le=65535)
    model_store: Path = Field(REPO / "model_store", description="archives (*.mar); weights in its weights/ folder")
    data_dir: Path = Field(Path("data"), description="the data set written by `python -m training dataset`")
    runs_dir: Path = Field(Path("runs"), description="jobs are kept in RUNS_DIR/jobs/<id>/")
    torchserve_management_url: str | None = Field(
        None, description="TorchServe management API; unset: finished jobs are packaged but not registered"
    )
    max_concurrent_jobs: int = Field(1, ge=1, description="training processes at once; later jobs queue")
    cancel_grace_seconds: float = Field(
        30.0, ge=0, description="after SIGTERM, how long a cancelled trainer may take to stop before SIGKILL"
    )
    poll_seconds: float = Field(0.5, gt=0, description="how often the job supervisor checks its processes")
    log_tail_lines: int = Field(50, ge=0, le=10_000)
    register_timeout_seconds: float = Field(300.0, gt=0, description="TorchServe loading a new version")
    register_workers: int = Field(1, ge=1, description="initial workers of a newly registered version")
    stop_jobs_on_shutdown: bool = Field(
        False, description="stop running trainers when the service stops (default: they go on and are adopted)"
    )

    @field_validator("model_store", "data_dir", "runs_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @field_validator("torchserve_management_url")
    @classmethod
    def _blank_is_unset(cls, url: str | None) -> str | None:
        if url is None:
            return None
        return url.strip().rstrip("/") or None

    @property
    def weights_dir(self) -> Path:
        return self.model_store / "weights"

    @property
    def jobs_dir(self) -> Path:
        return self.runs_dir / "jobs"
