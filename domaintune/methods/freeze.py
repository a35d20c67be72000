"""Freeze the embeddings and/or the lowest layers; gradual unfreezing; layer-wise LR decay."""

from __future__ import annotations

from typing import Any

from torch import nn

from domaintune.config.methods import FreezeConfig
from domaintune.methods.layers import (
    block_list,
    embedding_module,
    head_parameters,
    layerwise_groups,
)


def apply(model: nn.Module, cfg: FreezeConfig) -> nn.Module:
    """Freeze what the config names; everything else trains (gradual unfreezing starts later).

    With gradual unfreezing every parameter that will ever train is marked trainable here, so
    the optimizer holds them all; ``GradualUnfreezing`` then freezes the ones whose stage has
    not come yet (frozen parameters get no gradient, so AdamW leaves them alone).
    """
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


class GradualUnfreezing:
    """ULMFiT's schedule (Howard & Ruder, 2018): the head first, then one block per stage.

    Stage 0 trains the task head only (the head and anything outside the blocks and embeddings);
    stage k adds the k highest trainable blocks; the stage after the last block adds the
    embeddings (unless the recipe freezes them). A stage is an epoch or ``unfreeze_every`` steps.
    """

    def __init__(self, model: nn.Module, cfg: FreezeConfig) -> None:
        """Order the trainable parameters into stages."""
        self.cfg = cfg
        head = set(map(id, head_parameters(model).values()))
        blocks = [
            [p for p in layer.parameters() if p.requires_grad]
            for layer in reversed(list(block_list(model)))
        ]
        embeddings = [p for p in embedding_module(model).parameters() if p.requires_grad]
        staged = {id(p) for group in [*blocks, embeddings] for p in group}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in staged]
        self.stages = [rest] + [b for b in blocks if b] + ([embeddings] if embeddings else [])
        assert head <= {id(p) for p in rest}, "the head must train from the first stage"

    def stage(self, step: int, epoch: int) -> int:
        """The stage index at an optimizer step."""
        every = self.cfg.unfreeze_every
        return epoch if every == "epoch" else step // every

    def set_stage(self, stage: int) -> None:
        """Unfreeze the first ``stage + 1`` groups, freeze the rest."""
        for index, params in enumerate(self.stages):
            for param in params:
                param.requires_grad_(index <= stage)

    def on_train_begin(self, total_steps: int, steps_per_epoch: int, step: int) -> None:
        """Start (or resume) at the stage of ``step``."""
        epoch = step // max(1, steps_per_epoch)
        self.set_stage(self.stage(step, epoch))

    def on_step_begin(self, step: int, epoch: int) -> None:
        """Unfreeze the next block when a new stage begins."""
        self.set_stage(self.stage(step, epoch))


def callbacks(model: nn.Module, cfg: FreezeConfig) -> list[Any]:
    """The gradual-unfreezing schedule, when switched on."""
    return [GradualUnfreezing(model, cfg)] if cfg.gradual_unfreezing else []


def export(model: nn.Module) -> Any:
    """The model to save as a plain transformers checkpoint (unchanged)."""
    return model
