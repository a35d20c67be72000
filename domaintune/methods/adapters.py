"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021), written by hand.

The ``adapters`` package (1.3.0) pins ``transformers ~= 4.57`` and we run transformers 5, so it
cannot be installed beside us. An adapter is a small residual MLP, ``h + up(act(down(h)))``,
applied to a sublayer's output projection (before its dropout, residual and LayerNorm):

- houlsby: after the attention output projection and after the feed-forward output projection
  of every block;
- pfeiffer: after the feed-forward output projection only.

``up`` starts at zero, so the adapted model starts as the pretrained one. The adapter is a child
module of the projection plus a forward hook, so the base weights keep their names and removing
the adapters gives back a plain transformers model. Adapters cannot be merged (they are
non-linear): ``final/`` holds the base model and ``final/adapter/`` the adapter weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from domaintune.config.methods import AdapterConfig
from domaintune.methods.layers import block_list, load_trainable, save_trainable, train_only

ADAPTER_NAME = "bottleneck_adapter"

# Output projections of a block, relative to the block: (attention output, feed-forward output).
_PROJECTIONS = [
    ("attention.output.dense", "output.dense"),  # BERT, RoBERTa, MiniLM
    ("self_attn.o_proj", "mlp.down_proj"),  # Llama, Mistral, Qwen, SmolLM
    ("attn.c_proj", "mlp.c_proj"),  # GPT-2
    ("attention.out_lin", "ffn.lin2"),  # DistilBERT
]
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU}


class Bottleneck(nn.Module):
    """``up(act(down(h)))``: the residual branch of one adapter."""

    def __init__(self, hidden: int, bottleneck: int, activation: str) -> None:
        """Down-projection, activation and a zero-initialised up-projection."""
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.act = _ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The residual branch (the hook adds it to ``hidden``)."""
        return self.up(self.act(self.down(hidden)))  # type: ignore[no-any-return]


def _hook(projection: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    """Forward hook of an adapted projection: add the adapter's branch to its output."""
    return output + getattr(projection, ADAPTER_NAME)(output)


def adapted_projections(model: nn.Module, placement: str) -> list[nn.Module]:
    """The output projections that get an adapter, bottom block first."""
    found: list[nn.Module] = []
    for block in block_list(model):
        modules = dict(block.named_modules())
        for attention, feed_forward in _PROJECTIONS:
            if feed_forward in modules:
                if placement == "houlsby":
                    found.append(modules[attention])
                found.append(modules[feed_forward])
                break
        else:
            raise ValueError(
                f"{type(model).__name__}: no known output projections in its blocks → adapters "
                "support BERT-like, Llama-like, GPT-2 and DistilBERT models; use lora instead"
            )
    return found


def _out_features(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    weight: Any = module.weight
    return int(weight.shape[-1])  # GPT-2's Conv1D stores (in, out)


def apply(model: nn.Module, cfg: AdapterConfig) -> nn.Module:
    """Add adapters; train them, the task head and (optionally) the blocks' norms."""
    for projection in adapted_projections(model, cfg.placement):
        hidden = _out_features(projection)
        adapter = Bottleneck(hidden, max(1, hidden // cfg.reduction_factor), cfg.activation)
        adapter.to(next(projection.parameters()).device)
        projection.add_module(ADAPTER_NAME, adapter)
        projection._bottleneck_hook = projection.register_forward_hook(_hook)  # type: ignore[assignment]
    names = {n for n, _ in model.named_parameters() if f".{ADAPTER_NAME}." in n}
    if cfg.train_layer_norm:
        for block_name, module in _norm_modules(model):
            names |= {f"{block_name}.{n}" for n, _ in module.named_parameters()}
    train_only(model, names)
    return model


def _norm_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    blocks = {id(m) for m in block_list(model).modules()}
    return [
        (name, module)
        for name, module in model.named_modules()
        if id(module) in blocks and "Norm" in type(module).__name__
    ]


def save_adapter(model: nn.Module, folder: Path) -> None:
    """Adapter weights, trained norms and the head (safetensors) with the adapter config."""
    save_trainable(model, folder, {"method": "adapter"})


def base_model(model: nn.Module) -> nn.Module:
    """Remove every adapter and its hook: a plain transformers model (norms and head trained)."""
    for module in model.modules():
        if hasattr(module, ADAPTER_NAME):
            hook: Any = module._bottleneck_hook
            hook.remove()
            del module._bottleneck_hook
            delattr(module, ADAPTER_NAME)
    return model


def load_adapter(model: nn.Module, folder: Path, cfg: AdapterConfig) -> nn.Module:
    """Re-add the adapters to a reloaded base model and load their trained weights."""
    model = apply(model, cfg)
    load_trainable(model, folder)
    return model


def export(model: nn.Module) -> nn.Module | None:
    """Adapters are non-linear: they cannot be merged into the base weights."""
    return None
