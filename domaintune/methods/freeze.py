"""Freeze the embeddings and/or the lowest layers; layer-wise learning-rate decay."""

from __future__ import annotations

from typing import Any

from torch import nn

from domaintune.config.methods import FreezeConfig
from domaintune.methods.layers import block_list, embedding_module, layerwise_groups


def apply(model: nn.Module, cfg: FreezeConfig) -> nn.Module:
    """Freeze what the config names; everything else trains."""
    for param in model.parameters():
        param.requires_grad_(True)
    if cfg.embeddings:
        for param in embedding_module(model).parameters():
            param.requires_grad_(False)
    blocks = block_list(model)
    for layer in list(blocks)[: cfg.layers]:
        for param in layer.parameters():
            param.requires_grad_(False)
    return model


def param_groups(model: nn.Module, cfg: FreezeConfig, lr: float) -> list[dict[str, Any]]:
    """One optimizer group per depth (``methods.layers.layerwise_groups``)."""
    return layerwise_groups(model, cfg.layerwise_lr_decay, lr)


def export(model: nn.Module) -> Any:
    """The model to save as a plain transformers checkpoint (unchanged)."""
    return model
