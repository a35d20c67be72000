"""Prompt-based classification (``method: prompting``; docs/prompting.md).

Prompting changes the model class, the encoding and the scoring head, which are the task's
jobs: :func:`adapt_task` wraps the classification task in ``tasks.prompting.PromptTask``
(``api.prepare_data`` and ``deploy.load`` call it through ``methods.adapt_task``). What trains
is this module's job, as for every method: everything (``mode: finetune``), LoRA matrices and
norms (``adapter: lora``), or nothing (``zero_shot``, ``in_context``: the training loop then
has nothing to do and the run only evaluates).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from domaintune.config.methods import LoraConfig, PromptingConfig
from domaintune.errors import ConfigError
from domaintune.methods import peft
from domaintune.tasks.classification import ClassificationTask
from domaintune.tasks.prompting import PromptTask


def adapt_task(task: Any, cfg: PromptingConfig, state: dict[str, Any] | None = None) -> Any:
    """The classification task, prompted (``state``: a saved run's task state)."""
    if not isinstance(task, ClassificationTask):
        raise ConfigError(
            f"method: prompting: task: {task.cfg.name!r}: prompting classifies whole texts → "
            "use task: {name: classification}"
        )
    return PromptTask(task, cfg, state)


def _lora(cfg: PromptingConfig) -> LoraConfig:
    return LoraConfig(name="lora", r=cfg.lora_r, alpha=cfg.lora_alpha)


def apply(model: nn.Module, cfg: PromptingConfig) -> nn.Module:
    """Everything trains (finetune), LoRA (adapter: lora), or nothing (zero_shot, in_context)."""
    if cfg.mode == "finetune" and cfg.adapter == "lora":
        return peft.apply(model, _lora(cfg))
    for param in model.parameters():
        param.requires_grad_(cfg.mode == "finetune")
    return model


def export(model: nn.Module) -> Any:
    """The plain masked/causal LM (LoRA merged into its weights)."""
    return peft.export(model) if hasattr(model, "merge_and_unload") else model
