"""Placeholder: being written (hand-written soft_prompt method)."""

from __future__ import annotations

from typing import Any

from torch import nn


def apply(model: nn.Module, cfg: Any) -> nn.Module:
    """Not written yet."""
    raise NotImplementedError("soft_prompt")


def export(model: nn.Module) -> nn.Module | None:
    """Cannot merge."""
    return None


def base_model(model: nn.Module) -> nn.Module:
    """Not written yet."""
    raise NotImplementedError("soft_prompt")


def load_adapter(model: nn.Module, folder: Any, cfg: Any) -> nn.Module:
    """Not written yet."""
    raise NotImplementedError("soft_prompt")
