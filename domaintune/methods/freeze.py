"""Freeze the embeddings and/or the lowest layers; layer-wise learning-rate decay."""

from __future__ import annotations

from typing import Any

from torch import nn

from domaintune.config.methods import FreezeConfig
from domaintune.methods.layers import block_list, embedding_module


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
    """Build one optimizer group per depth, for layer-wise LR decay.

    The head trains at ``lr``, layer i at ``lr * decay**(L - i)`` and the embeddings at
    ``lr * decay**(L + 1)``; only trainable parameters are included.
    """
    blocks = list(block_list(model))
    depth: dict[int, int] = {}
    for i, layer in enumerate(blocks):
        for param in layer.parameters():
            depth[id(param)] = i + 1
    for param in embedding_module(model).parameters():
        depth[id(param)] = 0
    top = len(blocks) + 1
    groups: dict[int, list[nn.Parameter]] = {}
    for param in model.parameters():
        if param.requires_grad:
            groups.setdefault(depth.get(id(param), top), []).append(param)
    return [
        {"params": params, "lr": lr * cfg.layerwise_lr_decay ** (top - level)}
        for level, params in sorted(groups.items())
    ]


def export(model: nn.Module) -> Any:
    """The model to save as a plain transformers checkpoint (unchanged)."""
    return model
