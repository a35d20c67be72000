"""Find the embedding module and the stack of transformer blocks; layer-wise LR groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
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


# Top-level modules that make up a transformers task head (trained by every method).
HEAD_NAMES = ("classifier", "score", "pre_classifier", "qa_outputs")


def head_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameters of the task head (``classifier``/``score``...), by their full name."""
    return {
        name: param
        for name, param in model.named_parameters()
        if name.split(".", 1)[0] in HEAD_NAMES
    }


def train_only(model: nn.Module, names: set[str]) -> None:
    """Freeze every parameter except the named ones (and the task head)."""
    keep = names | set(head_parameters(model))
    for name, param in model.named_parameters():
        param.requires_grad_(name in keep)


def save_trainable(model: nn.Module, folder: Path, extra: dict[str, Any] | None = None) -> None:
    """The adapter-only checkpoint of a hand-written method: trainable tensors + a config."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad
    }
    save_file(tensors, str(folder / ADAPTER_WEIGHTS))
    (folder / ADAPTER_CONFIG).write_text(json.dumps(extra or {}, indent=1), encoding="utf-8")


def load_trainable(model: nn.Module, folder: Path) -> None:
    """Load ``save_trainable``'s tensors into the model (every saved name must exist)."""
    from safetensors.torch import load_file

    tensors = load_file(str(folder / ADAPTER_WEIGHTS))
    params = dict(model.named_parameters())
    missing = sorted(set(tensors) - set(params))
    if missing:
        raise ValueError(f"{folder}: adapter weights {missing[:3]} do not fit the model")
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)


ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
