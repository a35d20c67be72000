"""L2-SP (Li et al., 2018): penalise the distance of pretrained weights from their start."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from domaintune.config.objectives import L2SPConfig
from domaintune.objectives.protocol import ObjectiveContext


class L2SP:
    """Penalty ``weight / 2 * sum ||theta - theta_0||^2``.

    It covers trainable parameters that existed before training; the new task head is free.
    """

    def __init__(self, cfg: L2SPConfig) -> None:
        """Store the coefficient; the anchor is taken in ``setup``."""
        self.cfg = cfg
        self.anchor: list[tuple[nn.Parameter, torch.Tensor]] = []

    def setup(self, ctx: ObjectiveContext) -> None:
        """Remember the starting values of the trainable pretrained parameters."""
        self.anchor = [
            (param, param.detach().clone())
            for name, param in ctx.model.named_parameters()
            if param.requires_grad and _strip(name) in ctx.pretrained
        ]

    def loss(self, model: nn.Module, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        """The penalty (a scalar)."""
        total = sum(((p - p0) ** 2).sum() for p, p0 in self.anchor)
        return 0.5 * self.cfg.weight * torch.as_tensor(total)


def _strip(name: str) -> str:
    """Drop wrapper prefixes (DDP ``module.``) so names match the loaded checkpoint."""
    return name.removeprefix("module.")
