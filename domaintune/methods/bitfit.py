"""BitFit (Ben Zaken, Ravfogel & Goldberg, 2022): train only the bias terms and the task head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from domaintune.config.methods import BitFitConfig
from domaintune.methods.layers import save_trainable, train_only


def bias_names(model: nn.Module) -> set[str]:
    """Names of every bias parameter (attention, feed-forward, LayerNorm)."""
    return {name for name, _ in model.named_parameters() if name.endswith(".bias")}


def apply(model: nn.Module, cfg: BitFitConfig) -> nn.Module:
    """Freeze everything except the biases and the task head."""
    names = bias_names(model)
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no bias parameters (e.g. Llama) → bitfit cannot train "
            "it; use lora or ia3"
        )
    train_only(model, names)
    return model


def save_adapter(model: nn.Module, folder: Path) -> None:
    """The biases and the head only (a few hundred KB for MiniLM)."""
    save_trainable(model, folder, {"method": "bitfit"})


def export(model: nn.Module) -> Any:
    """The model itself: the trained biases already live in the base weights."""
    return model
