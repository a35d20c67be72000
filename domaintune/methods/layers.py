"""Find the embedding module and the stack of transformer blocks of a transformers model."""

from __future__ import annotations

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
