"""Full fine-tuning: every parameter trains (optionally with layer-wise LR decay)."""

from __future__ import annotations

from typing import Any

from torch import nn

from domaintune.config.methods import FullConfig
from domaintune.methods.layers import layerwise_groups


def apply(model: nn.Module, cfg: FullConfig) -> nn.Module:
    """Make every parameter trainable."""
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def param_groups(model: nn.Module, cfg: FullConfig, lr: float) -> list[dict[str, Any]] | None:
    """Layer-wise LR decay groups, or None (one group) when the decay is 1."""
    if cfg.layerwise_lr_decay == 1.0:
        return None
    return layerwise_groups(model, cfg.layerwise_lr_decay, lr)


def export(model: nn.Module) -> Any:
    """The model to save as a plain transformers checkpoint (unchanged)."""
    return model
