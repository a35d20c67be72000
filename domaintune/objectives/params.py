"""Which parameters a penalty objective (L2-SP, EWC) covers, by their checkpoint names."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# What wrappers insert into parameter names: DDP's "module.", peft's "base_model.model." and
# the copies peft trains in place of a module (modules_to_save) or wraps (base_layer).
_WRAPPER_PARTS = (".modules_to_save.default", ".original_module", ".base_layer")


def base_name(name: str) -> str:
    """A parameter's name in the loaded checkpoint, without DDP/peft wrapper parts."""
    name = name.removeprefix("module.").removeprefix("base_model.model.")
    for part in _WRAPPER_PARTS:
        name = name.replace(part, "")
    return name


def covered_parameters(ctx: Any) -> dict[str, nn.Parameter]:
    """Trainable parameters that start from a known state, by base name.

    That is every trainable parameter except a task head the checkpoint lacked (random, with
    nothing to keep): loaded weights, a head grown from an earlier run's, and what a method
    adds as an identity (LoRA's B is zero, so the start is still the loaded function).
    """
    extra = getattr(ctx, "extra", None) or {}
    fresh: set[str] | None = extra.get("fresh")
    covered = {}
    for name, param in ctx.model.named_parameters():
        base = base_name(name)
        known = base in ctx.pretrained if fresh is None else base not in fresh
        if param.requires_grad and known:
            covered[base] = param
    return covered


def kept_rows(ctx: Any, name: str) -> int | None:
    """How many leading rows of a grown head existed before the stage (None: all)."""
    extra = getattr(ctx, "extra", None) or {}
    grown: dict[str, int] = extra.get("grown", {})
    return grown.get(name)


def on_device(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` on ``like``'s device (the loop moves the model after ``setup``)."""
    return tensor if tensor.device == like.device else tensor.to(like.device)
