"""Counting without running: parameters, bytes of the fp16 weights file, and multiply-accumulates per pass."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from colorizers.registry import ModelSpec, create_model

DEFAULT_SIZE = 256
MB = 1_000_000  # sizes are shown in decimal megabytes

# Tensors that weights.save keeps in float32 inside an fp16 file (spectral-norm vectors, BatchNorm statistics).
_FP32_SUFFIXES = ("running_var", "running_mean", "weight_u", "weight_v")


def parameter_count(model: nn.Module) -> int:
    """Every parameter, frozen ones included: a frozen encoder still costs memory and time."""
    return sum(p.numel() for p in model.parameters())


def fp16_bytes(model: nn.Module) -> int:
    """Bytes of the state_dict as ``colorizers.weights.save`` writes it (fp16 floats, a few fp32 buffers)."""
    total = 0
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not key.endswith(_FP32_SUFFIXES):
            total += tensor.numel() * 2
        else:
            total += tensor.numel() * tensor.element_size()
    return total


def count_macs(model: nn.Module, size: int = DEFAULT_SIZE) -> int:
    """Multiply-accumulates of one ``predict_ab`` on a (1, 1, size, size) L tensor (FLOPs / 2).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions, matrix products and attention;
    element-wise work (activations, normalisation, colour conversion) is not counted. Works on the meta device.
    """
    device = next(model.parameters()).device
    l = torch.full((1, 1, size, size), 50.0, device=device)  # mid-grey L
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.predict_ab(l)
    return counter.get_total_flops() // 2


def _build(model_id: str, variant: str, device: str) -> nn.Module:
    with torch.device(device):
        model = create_model(model_id, variant)
    return model.eval()


def variant_stats(spec: ModelSpec, variant: str, size: int = DEFAULT_SIZE) -> dict[str, Any]:
    """Parameters, fp16 size and MACs (at ``size`` and at the working size) of one variant, built on meta."""
    try:
        model = _build(spec.id, variant, "meta")
        macs = count_macs(model, size)
        device = "meta"
    except (NotImplementedError, RuntimeError):  # an operator without a meta kernel: count on real memory
        model = _build(spec.id, variant, "cpu")
        macs = count_macs(model, size)
        device = "cpu"
    stats: dict[str, Any] = {
        "parameters": parameter_count(model),
        "fp16_bytes": fp16_bytes(model),
        "size": size,
        "macs": macs,
        "counted_on": device,
    }
    if spec.working_size != size:
        stats["macs_working_size"] = count_macs(model, spec.working_size)
    return stats
