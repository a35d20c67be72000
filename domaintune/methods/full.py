"""Full fine-tuning: every parameter trains."""

from __future__ import annotations

from typing import Any

from torch import nn

from domaintune.config.methods import FullConfig


def apply(model: nn.Module, cfg: FullConfig) -> nn.Module:
    """Make every parameter trainable."""
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def export(model: nn.Module) -> Any:
    """The model to save as a plain transformers checkpoint (unchanged)."""
    return model
