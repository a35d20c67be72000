"""Find the embedding module and the stack of transformer blocks; layer-wise LR groups."""

from __future__ import annotations

from typing import Any

from torch import nn


def embedding_module(model: nn.Module) -> nn.Module:
    """The embedding block (BERT ``embeddings``) or the input embedding table (decoders)."""
    base = getattr(model, "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    if isinstance(embeddings, nn.Module):
        return embeddings
    return model.get_input_embeddings()  # type: ignore[operator,no-any-return]


def block_list(model: nn.Module) -> nn.ModuleList:
    """The longest ``ModuleList`` under the base model: its transformer layers, bottom first."""
    base = getattr(model, "base_model", model)
    best: nn.ModuleList | None = None
    for module in base.modules():
        if isinstance(module, nn.ModuleList) and (best is None or len(module) > len(best)):
            best = module
    if best is None:
        raise ValueError(f"{type(model).__name__}: no stack of layers found")
    return best


def layerwise_groups(model: nn.Module, decay: float, lr: float) -> list[dict[str, Any]]:
    """One optimizer group per depth, for layer-wise LR decay.

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
        {"params": params, "lr": lr * decay ** (top - level)}
        for level, params in sorted(groups.items())
    ]
