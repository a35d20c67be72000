"""LoRA (with rsLoRA, DoRA), AdaLoRA and (IA)^3 through peft; the task head always trains.

All three merge into the base weights (``export``), and the run also keeps peft's adapter-only
checkpoint (``final/adapter/``), loadable with ``peft.PeftModel.from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from domaintune.config.methods import AdaLoraConfig, IA3Config, LoraConfig
from domaintune.methods.layers import HEAD_NAMES

PeftMethodConfig = LoraConfig | AdaLoraConfig | IA3Config


def task_type(model: nn.Module) -> str:
    """Peft's task type for a transformers model class."""
    name = type(model).__name__
    if name.endswith("ForTokenClassification"):
        return "TOKEN_CLS"
    if name.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    if name.endswith("ForCausalLM"):
        return "CAUSAL_LM"
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return "SEQ_2_SEQ_LM"
    return "FEATURE_EXTRACTION"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def norm_module_names(model: nn.Module) -> list[str]:
    """Last name parts of the model's normalisation layers (LayerNorm, RMSNorm).

    For peft's ``modules_to_save``, which matches on the module name's end; the head is left out.
    """
    names: dict[str, None] = {}
    for name, module in model.named_modules():
        if name.split(".")[0] in HEAD_NAMES or not name:
            continue
        kind = type(module).__name__
        if isinstance(module, nn.LayerNorm) or kind.endswith(("LayerNorm", "RMSNorm")):
            names[name.rsplit(".", 1)[-1]] = None
    return list(names)


def peft_config(model: nn.Module, cfg: PeftMethodConfig) -> Any:
    """The peft config for ``cfg`` (the task head is never an adapter target)."""
    import peft

    saved = list(cfg.modules_to_save)
    if getattr(cfg, "train_norms", False):
        saved += [n for n in norm_module_names(model) if n not in saved]
    common: dict[str, Any] = {
        "task_type": task_type(model),
        "target_modules": cfg.target_modules,
        "modules_to_save": saved or None,
    }
    if cfg.target_modules == "all-linear":
        common["exclude_modules"] = [n for n in HEAD_NAMES if hasattr(model, n)] or None
    if isinstance(cfg, IA3Config):
        return peft.IA3Config(**common, feedforward_modules=cfg.feedforward_modules)
    lora: dict[str, Any] = {"lora_alpha": _number(cfg.alpha), "lora_dropout": cfg.dropout}
    if isinstance(cfg, AdaLoraConfig):
        # total_step, tinit and tfinal are placeholders: on_train_begin sets them from the
        # real number of steps (peft reads them at every step).
        return peft.AdaLoraConfig(
            **common,
            **lora,
            init_r=cfg.init_r,
            target_r=cfg.r,
            total_step=1000,
            tinit=100,
            tfinal=200,
            orth_reg_weight=cfg.orth_reg_weight,
        )
    return peft.LoraConfig(**common, **lora, r=cfg.r, use_rslora=cfg.rslora, use_dora=cfg.dora)


def apply(model: nn.Module, cfg: PeftMethodConfig) -> nn.Module:
    """Wrap the model with peft adapters on ``cfg.target_modules``."""
    import peft

    return peft.get_peft_model(model, peft_config(model, cfg))  # type: ignore[arg-type,no-any-return]


class AdaLoraSchedule:
    """Drives AdaLoRA: its rank budget schedule and its orthogonality penalty.

    peft adds the penalty only to a loss computed by the model (``outputs.loss``); our tasks
    compute their own loss, so the same penalty (mean Frobenius distance of ``A Aᵀ`` and ``BᵀB``
    from the identity) is added here.
    """

    def __init__(self, model: nn.Module, cfg: AdaLoraConfig) -> None:
        """Keep the peft model and the recipe's schedule fractions."""
        self.model = model
        self.cfg = cfg
        self.matrices = [
            (name, p)
            for name, p in model.named_parameters()
            if "lora_A" in name or "lora_B" in name
        ]

    def on_train_begin(self, total_steps: int, steps_per_epoch: int, step: int) -> None:
        """Set peft's total_step, tinit and tfinal from the run's real length."""
        config: Any = self.model.peft_config["default"]  # type: ignore[index]
        config.total_step = max(3, total_steps)
        config.tinit = int(self.cfg.warmup_fraction * config.total_step)
        config.tfinal = int(self.cfg.final_fraction * config.total_step)
        if config.tinit >= config.total_step - config.tfinal:
            config.tinit, config.tfinal = 0, 0

    def on_step_end(self, step: int) -> None:
        """Update importance scores and prune ranks (after the optimizer step)."""
        self.model.base_model.update_and_allocate(step)  # type: ignore[union-attr,operator]

    def loss(self, model: nn.Module, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        """``orth_reg_weight`` × mean ‖P Pᵀ − I‖_F over the A and B matrices."""
        terms = []
        for name, p in self.matrices:
            cov = p @ p.T if "lora_A" in name else p.T @ p
            eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
            terms.append(torch.linalg.matrix_norm(cov - eye))
        return self.cfg.orth_reg_weight * torch.stack(terms).mean()


def param_groups(model: nn.Module, cfg: PeftMethodConfig, lr: float) -> list[dict[str, Any]] | None:
    """LoRA+ and the head's own learning rate, as optimizer groups (None: one group at ``lr``).

    With ``loraplus_lr_ratio`` the B matrices (and DoRA magnitudes) train at ratio × ``lr``;
    with ``head_lr`` the task head (peft's ``modules_to_save`` copy) trains at that rate. peft's
    ``create_loraplus_optimizer`` builds a whole optimizer; the loop builds its own (fused AdamW,
    weight-decay split), so only the grouping rule is written here.
    """
    ratio = getattr(cfg, "loraplus_lr_ratio", None)
    head_lr = getattr(cfg, "head_lr", None)
    if not ratio and head_lr is None:
        return None
    groups: dict[str, list[nn.Parameter]] = {"rest": [], "fast": [], "head": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        parts = name.split(".")
        if head_lr is not None and "lora_" not in name and any(h in parts for h in HEAD_NAMES):
            groups["head"].append(p)
        elif ratio and ("lora_B" in name or "lora_magnitude" in name):
            groups["fast"].append(p)
        else:
            groups["rest"].append(p)
    rates = {"rest": lr, "fast": lr * (ratio or 1.0), "head": head_lr or lr}
    return [{"params": ps, "lr": rates[k]} for k, ps in groups.items() if ps]


def callbacks(model: nn.Module, cfg: PeftMethodConfig) -> list[Any]:
    """AdaLoRA's schedule; nothing for LoRA and (IA)^3."""
    return [AdaLoraSchedule(model, cfg)] if isinstance(cfg, AdaLoraConfig) else []


def save_adapter(model: nn.Module, folder: Path) -> None:
    """Peft's adapter-only checkpoint (adapter weights and the trained head)."""
    model.save_pretrained(str(folder))  # type: ignore[operator]


def export(model: nn.Module) -> Any:
    """Merge the adapters into the base weights: a plain transformers model."""
    return model.merge_and_unload()  # type: ignore[operator]
