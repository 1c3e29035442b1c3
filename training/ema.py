"""The exponential moving average of the model's weights: what a run validates and exports."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class ModelEMA:
    """Exponential moving average of a model's parameters (buffers are copied), with the usual warm-up.

    The decay used at update n is min(decay, (1 + n) / (10 + n)), so early averages are not dominated by the
    random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        params = dict(model.named_parameters())
        for name, ema_param in self.module.named_parameters():
            ema_param.lerp_(params[name].detach().to(ema_param.dtype), 1.0 - decay)
        buffers = dict(model.named_buffers())
        for name, ema_buffer in self.module.named_buffers():
            ema_buffer.copy_(buffers[name])

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
