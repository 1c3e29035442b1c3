"""The processes of one run: the DDP process group (or a world of one), what they run on, and replica checksums."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from training.reporting import cpu_name, write_json


class Distributed:
    """The process group under ``torchrun`` (gloo on CPU, nccl on CUDA), or a world of one.

    ``device`` is this process's device: ``cuda:LOCAL_RANK`` when several processes share CUDA devices.
    """

    def __init__(
        self, device: torch.device, rank: int = 0, world: int = 1, local_rank: int = 0, owns_group: bool = False
    ) -> None:
        self.device, self.rank, self.world, self.local_rank = device, rank, world, local_rank
        self.owns_group = owns_group

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(device, rank, world, local_rank, owns)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_max(self, values: list[float]) -> list[float]:
        """Element-wise maximum over all processes."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def mean(self, value: torch.Tensor) -> float:
        """Mean of a scalar over all processes."""
        if not self.enabled:
            return float(value)
        t = value.detach().float().reshape(1).to(self.device)
        dist.all_reduce(t)
        return float(t) / self.world

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def default_workers(world: int) -> int:
    cpus = os.cpu_count() or 1
    return 0 if cpus <= 2 else max(1, min(8, cpus // world - 1))


def hardware_description(device: torch.device, world: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name()
        threads = torch.get_num_threads()
        name = f"{name} ({threads} torch thread{'' if threads == 1 else 's'})"
    prefix = f"{world} x " if world > 1 else ""
    return f"{prefix}{name}, torch {torch.__version__}"


def write_parameter_digest(path: Path, rank: int, step: int, nets: Mapping[str, nn.Module], ema: nn.Module) -> None:
    """This process's checksums of its networks and EMA: equal files from every rank prove the replicas agree."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        path,
        {"rank": rank, "step": step, "parameters": parameter_digest(nets), "ema": parameter_digest({"model": ema})},
    )


def parameter_digest(modules: Mapping[str, nn.Module]) -> str:
    """SHA-256 over every parameter (name and float32 bytes) of the modules."""
    digest = hashlib.sha256()
    for key in sorted(modules):
        for name, param in modules[key].named_parameters():
            digest.update(f"{key}.{name}".encode())
            digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
