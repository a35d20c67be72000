"""L2-SP (Li et al., 2018): penalise the distance of pretrained weights from their start."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from domaintune.config.objectives import L2SPConfig
from domaintune.objectives.params import covered_parameters, kept_rows, on_device
from domaintune.objectives.protocol import ObjectiveContext


class L2SP:
    """Penalty ``weight / 2 * sum ||theta - theta_0||^2``.

    The anchor ``theta_0`` is the stage's starting weights (``setup`` runs before training,
    and again before a resumed run loads its checkpoint), so in a pipeline it is the previous
    stage's final model. A new task head is free; a head grown from an earlier run's
    (``tasks.label_growth``) is anchored on its old rows only.
    """

    def __init__(self, cfg: L2SPConfig) -> None:
        """Store the coefficient; the anchor is taken in ``setup``."""
        self.cfg = cfg
        self.anchor: list[tuple[nn.Parameter, torch.Tensor, int | None]] = []

    def setup(self, ctx: ObjectiveContext) -> None:
        """Remember the starting values of the trainable pretrained parameters."""
        self.anchor = [
            (param, param.detach().clone(), kept_rows(ctx, name))
            for name, param in covered_parameters(ctx).items()
        ]

    def loss(self, model: nn.Module, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        """The penalty (a scalar)."""
        self.anchor = [(p, on_device(p0, p), rows) for p, p0, rows in self.anchor]
        total = sum(((p[:rows] - p0[:rows]) ** 2).sum() for p, p0, rows in self.anchor)
        return 0.5 * self.cfg.weight * torch.as_tensor(total)
