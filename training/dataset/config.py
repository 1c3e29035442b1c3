"""What a data set build makes and where (``BuildConfig``): selection, split, crop recipe, cache and workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.dataset.crops import CropRecipe
from training.dataset.photos import PHOTO_LIST
from training.dataset.split import UNSEEN_PACKAGES


@dataclass(frozen=True)
class BuildConfig:
    """What to build and where; ``cache_dir`` defaults to ``data_dir/cache``."""

    data_dir: Path = Path("data")
    cache_dir: Path | None = None
    photo_list: Path = PHOTO_LIST
    limit: int | None = None
    packages: tuple[str, ...] | None = None
    skip_large: bool = False
    seed: int = 0
    val_fraction: float = 0.1
    unseen_packages: tuple[str, ...] = UNSEEN_PACKAGES
    workers: int = 1
    recipe: CropRecipe = field(default_factory=CropRecipe)
    progress: bool = True

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir is not None else Path(self.data_dir) / "cache"
