"""LoRA through peft; the classification head trains in full (``modules_to_save``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from domaintune.config.methods import LoraConfig


def _task_type(model: nn.Module) -> str:
    name = type(model).__name__
    if name.endswith("ForTokenClassification"):
        return "TOKEN_CLS"
    if name.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    if name.endswith("ForCausalLM"):
        return "CAUSAL_LM"
    return "FEATURE_EXTRACTION"


def apply(model: nn.Module, cfg: LoraConfig) -> nn.Module:
    """Wrap the model with LoRA adapters on ``cfg.target_modules``."""
    import peft

    lora = peft.LoraConfig(
        task_type=_task_type(model),
        r=cfg.r,
        lora_alpha=int(cfg.alpha) if float(cfg.alpha).is_integer() else cfg.alpha,  # type: ignore[arg-type]
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
    )
    return peft.get_peft_model(model, lora)  # type: ignore[arg-type,no-any-return]


def export(model: nn.Module) -> Any:
    """Merge the adapters into the base weights: a plain transformers model."""
    return model.merge_and_unload()  # type: ignore[operator]
