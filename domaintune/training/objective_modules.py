"""Trainable modules that objectives own outside the model (DANN's domain classifier).

They train with the model (their parameters join the optimizer), live on the run's device, are
saved in and restored from checkpoints (``accelerator.register_for_checkpointing``, so a resumed
run is exact), and are never saved into the final model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from domaintune.config.sections import TrainConfig


def objective_modules(objectives: list[Any]) -> list[nn.Module]:
    """Modules of every objective that defines ``modules()``, in objective order."""
    return [m for o in objectives if hasattr(o, "modules") for m in o.modules()]


def attach_modules(
    accelerator: Any, modules: list[nn.Module], optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> list[nn.Parameter]:
    """Move ``modules`` to the device, add them to ``optimizer``, register them for checkpoints.

    Call before the scheduler is built (it reads every group's learning rate) and before a
    checkpoint is loaded. Returns their trainable parameters (for clipping and syncing).
    """
    params: list[nn.Parameter] = []
    for module in modules:
        module.to(accelerator.device)
        module.train()
        own = [p for p in module.parameters() if p.requires_grad]
        decay = [p for p in own if p.ndim >= 2]  # biases get no weight decay, as in build_optimizer
        plain = [p for p in own if p.ndim < 2]
        for group, wd in ((decay, cfg.weight_decay), (plain, 0.0)):
            if group:
                optimizer.add_param_group({"params": group, "lr": cfg.lr, "weight_decay": wd})
        params += own
        accelerator.register_for_checkpointing(module)
    return params


def sync_gradients(accelerator: Any, params: list[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over processes (DDP does it only for the model)."""
    if accelerator.num_processes < 2:
        return
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        param.grad = accelerator.reduce(param.grad, reduction="mean")
