"""Optimizer and learning-rate schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from domaintune.config.sections import TrainConfig

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight", "ln_")


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, groups: list[dict[str, Any]] | None = None
) -> torch.optim.Optimizer:
    """AdamW or SGD over trainable parameters; no weight decay on biases, norms and 1-D tensors.

    Args:
        model: The model after the method was applied.
        cfg: Training section.
        groups: Optional parameter groups with their own ``lr`` (e.g. layer-wise decay);
            trainable parameters of ``model`` they leave out (a task's own head outside the
            transformers model, e.g. the CRF) train at ``cfg.lr``.

    """
    if groups is None:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    covered = {id(p) for group in groups for p in group["params"]}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in covered]
    if rest:
        groups = [*groups, {"params": rest, "lr": cfg.lr}]
    names = {id(p): n for n, p in model.named_parameters()}
    split: list[dict[str, Any]] = []

    def no_decay(p: nn.Parameter) -> bool:
        # 1-D tensors are biases and norm scales whatever a wrapper renames them to (peft's
        # "LayerNorm.modules_to_save.default.weight"); the names catch the rest
        return p.ndim < 2 or any(k in names[id(p)] for k in _NO_DECAY)

    for group in groups:
        decay = [p for p in group["params"] if not no_decay(p)]
        plain = [p for p in group["params"] if no_decay(p)]
        for params, wd in ((decay, cfg.weight_decay), (plain, 0.0)):
            if params:
                split.append({"params": params, "lr": group["lr"], "weight_decay": wd})
    if not split:
        raise ValueError("no trainable parameters")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(split, lr=cfg.lr, momentum=cfg.momentum)
    # The fused kernel is ~5x faster than foreach on CPU too (measured: 0.04 s vs 0.21 s a step
    # for MiniLM); it needs floating-point parameters on CPU or CUDA.
    fused = all(
        p.is_floating_point() and p.device.type in {"cpu", "cuda"}
        for g in split
        for p in g["params"]
    )
    return torch.optim.AdamW(split, lr=cfg.lr, fused=fused or None)


def boost_parameters(
    model: nn.Module,
    groups: list[dict[str, Any]] | None,
    params: list[nn.Parameter],
    factor: float,
    lr: float,
) -> list[dict[str, Any]]:
    """Move ``params`` (e.g. a newly initialised head) into a group at ``factor`` × its LR.

    ``params`` that no group holds (a task's own head outside the method's groups) get a group
    at ``factor`` × ``lr``.
    """
    if groups is None:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    boosted = {id(p) for p in params if p.requires_grad}
    out: list[dict[str, Any]] = []
    for group in groups:
        keep = [p for p in group["params"] if id(p) not in boosted]
        moved = [p for p in group["params"] if id(p) in boosted]
        if keep:
            out.append({**group, "params": keep})
        if moved:
            out.append({**group, "params": moved, "lr": group["lr"] * factor})
    held = {id(p) for group in groups for p in group["params"]}
    alone = [p for p in params if p.requires_grad and id(p) not in held]
    if alone:
        out.append({"params": alone, "lr": lr * factor})
    return out


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    """Transformers' schedule named by ``cfg.scheduler`` with linear warm-up."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if cfg.scheduler == "constant" else cfg.scheduler
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=round(cfg.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
