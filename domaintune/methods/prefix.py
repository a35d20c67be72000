"""Prefix tuning (Li & Liang, 2021), written by hand for encoders and decoders.

Every layer gets ``P`` learned key and value vectors per key/value head, prepended to the keys
and values its attention computes; the real tokens attend to them, nothing attends from them.

Why not peft: with peft 0.21.2 and transformers 5.24, ``peft.PrefixTuningConfig`` refuses BERT
and Llama sequence classification ("Model does not support past key values which are required
for prefix tuning") and works only for Llama causal LMs. Here the prefix is added by an
attention function registered with transformers' ``AttentionInterface`` (``domaintune_prefix``)
that concatenates the layer's prefix to ``key``/``value`` (B, H_kv, T, D), extends the mask with
``P`` always-visible columns and then calls the implementation the model had before (SDPA or
eager), so every model that dispatches through ``ALL_ATTENTION_FUNCTIONS`` works: BERT/MiniLM
(classification, token classification, masked LM) and Llama-like decoders (sequence
classification, causal LM).

Masks: the mask function registered for the name is transformers' ``sdpa_mask`` (boolean, or
None where SDPA may skip it). A None mask of a causal layer is built explicitly (prefix columns
visible to every query), since SDPA's ``is_causal`` would align the causal diagonal wrongly once
the keys are longer than the queries; for the eager implementation boolean masks become
additive. The prefix keys carry no rotary position (as in peft, whose prefix lives in the
cache); unlike peft, the real tokens keep the rotary positions 0..T-1 of the base model (peft's
start at P), and with that one difference the logits equal peft's (tested).

With ``projection`` (the paper's reparameterisation) an MLP (embedding P × hidden → hidden' →
layers·2·heads·head_dim) produces the prefix during training; ``save_adapter`` stores the
computed prefix, and ``load_adapter`` loads it as a plain (non-projected) prefix. ``init:
vocab`` starts the prefix at the keys and values the frozen model computes for random vocabulary
tokens (the paper's real-word initialisation); with the projection these are a fixed offset
added to the MLP's output, whose last layer starts at zero. Prefix tuning cannot be merged:
``final/`` holds the base model (with the trained head) and ``final/adapter/`` the prefix.
Gradient checkpointing and cached generation work (both tested).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domaintune.config.methods import PrefixConfig
from domaintune.methods.layers import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    block_list,
    load_trainable,
    train_only,
)

ATTENTION_NAME = "domaintune_prefix"
ENCODER_NAME = "prefix_encoder"  # child module of the model: its parameters are "prefix_encoder.*"
PREFIX_PARAM = f"{ENCODER_NAME}.prefix"  # the direct prefix, and the saved (computed) one
_STATE = "_domaintune_prefix"  # attribute on the model and on each attention module
_RANDOM_STD = 0.02


class PrefixEncoder(nn.Module):
    """The prefix of every layer: a parameter, or an MLP over P embeddings (``projection``).

    ``forward()`` returns (L, 2, H_kv, P, D): per layer, keys then values.
    """

    def __init__(self, shape: tuple[int, int, int, int, int], hidden: int, cfg: PrefixConfig):
        """Build the direct prefix or the projection MLP (initialised as ``cfg.init`` says)."""
        super().__init__()
        self.shape = shape
        layers, _, heads, length, dim = shape
        self.mlp: nn.Sequential | None = None
        if cfg.projection:
            self.embedding = nn.Parameter(torch.randn(length, hidden))  # (P, H), as peft's
            self.mlp = nn.Sequential(
                nn.Linear(hidden, cfg.projection_hidden),
                nn.Tanh(),
                nn.Linear(cfg.projection_hidden, layers * 2 * heads * dim),
            )
            # A fixed offset (the real-word activations with init=vocab, else zero).
            self.register_buffer("anchor", torch.zeros(shape))
        else:
            self.prefix = nn.Parameter(torch.randn(shape) * _RANDOM_STD)

    def forward(self) -> torch.Tensor:
        """The prefix of every layer (L, 2, H_kv, P, D)."""
        if self.mlp is None:
            return self.prefix
        layers, _, heads, length, dim = self.shape
        out = self.mlp(self.embedding).view(length, layers, 2, heads, dim)  # (P, L, 2, H, D)
        return out.permute(1, 2, 3, 0, 4) + self.anchor  # type: ignore[no-any-return]

    def start_from(self, activations: torch.Tensor) -> None:
        """Start at ``activations`` (L, 2, H_kv, P, D): the output of ``forward`` equals them."""
        with torch.no_grad():
            if self.mlp is None:
                self.prefix.copy_(activations)
                return
            last = self.mlp[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)  # starts at the anchor and learns an offset from it
            nn.init.zeros_(last.bias)
            self.anchor.copy_(activations)  # type: ignore[operator]


@dataclass
class _Prefix:
    """What the attention function needs: shared by the model and its attention modules."""

    encoder: PrefixEncoder
    previous: str  # the attention implementation the model had before
    hook: Any  # the forward pre-hook on the base model
    kv: torch.Tensor | None = None  # (L, 2, H_kv, P, D), computed once per forward
    capture: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None


def _compute(state: _Prefix) -> Callable[..., None]:
    def hook(module: nn.Module, args: Any) -> None:
        """Compute every layer's prefix once per forward (the MLP runs once, not per layer)."""
        state.kv = None if state.capture is not None else state.encoder()

    return hook


def _previous_function(module: nn.Module, name: str) -> Callable[..., Any]:
    """The attention function the model used before: SDPA, or its own module's eager one."""
    if name == "eager":
        eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if eager is None:
            raise ValueError(f"{type(module).__name__}: no eager_attention_forward → use sdpa")
        return eager  # type: ignore[no-any-return]
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS[name]  # type: ignore[no-any-return]


def _extend_mask(
    mask: torch.Tensor | None,
    module: nn.Module,
    query: torch.Tensor,
    keys: int,
    length: int,
    is_causal: bool | None,
) -> torch.Tensor | None:
    """The mask with ``length`` visible prefix columns in front (None: nothing masked)."""
    q = query.shape[2]
    if mask is None:
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        if not causal or q == 1:
            return None
        # Query i sees the prefix and the real keys up to its own position (keys may include a
        # cache before the queries): SDPA's is_causal would be wrong once the prefix is there.
        rows = torch.arange(q, device=query.device)[:, None] + (keys - q)
        visible = torch.arange(keys, device=query.device)[None, :] <= rows  # (Q, K)
        front = torch.ones(q, length, dtype=torch.bool, device=query.device)
        return torch.cat([front, visible], dim=-1)[None, None]  # (1, 1, Q, P + K)
    fill = torch.ones if mask.dtype == torch.bool else torch.zeros
    front = fill(*mask.shape[:-1], length, dtype=mask.dtype, device=mask.device)
    return torch.cat([front, mask], dim=-1)  # (B, 1, Q, P + K)


def prefix_attention(
    module: nn.Module,
    query: torch.Tensor,  # (B, H, Q, D)
    key: torch.Tensor,  # (B, H_kv, K, D)
    value: torch.Tensor,  # (B, H_kv, K, D)
    attention_mask: torch.Tensor | None,  # bool (B, 1, Q, K) from sdpa_mask, float, or None
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention over the layer's prefix and the real keys, by the previous implementation."""
    found = getattr(module, _STATE, None)
    if found is None:
        raise RuntimeError(f"{type(module).__name__}: attention module without a prefix layer")
    state, layer = found
    previous = _previous_function(module, state.previous)
    if state.capture is not None:  # apply's init run: record this layer's keys and values
        state.capture[layer] = (key[0].detach(), value[0].detach())
        return previous(module, query, key, value, attention_mask, **kwargs)  # type: ignore[no-any-return]
    assert state.kv is not None, "the prefix is computed by a pre-hook on the base model"
    prefix = state.kv[layer].to(key.dtype)  # (2, H_kv, P, D)
    batch, length = key.shape[0], prefix.shape[2]
    mask = _extend_mask(
        attention_mask, module, query, key.shape[2], length, kwargs.get("is_causal")
    )
    key = torch.cat([prefix[0].expand(batch, -1, -1, -1), key], dim=2)  # (B, H_kv, P + K, D)
    value = torch.cat([prefix[1].expand(batch, -1, -1, -1), value], dim=2)
    if state.previous == "eager" and mask is not None and mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=query.dtype, device=mask.device)
        mask = torch.where(mask, zero, torch.finfo(query.dtype).min)  # eager adds the mask
    return previous(module, query, key, value, mask, **kwargs)  # type: ignore[no-any-return]


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)


def _attention_modules(model: nn.Module) -> list[list[nn.Module]]:
    """Per layer (bottom first), the modules that may call the attention function."""
    return [
        [m for m in block.modules() if type(m).__name__.endswith("Attention")]
        for block in block_list(model)
    ]


def prefix_shape(model: nn.Module, length: int) -> tuple[int, int, int, int, int]:
    """(layers, 2, key/value heads, P, head dim) for ``model``."""
    config: Any = model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return (len(block_list(model)), 2, kv_heads, length, head_dim)


def apply(model: nn.Module, cfg: PrefixConfig) -> nn.Module:
    """Add the prefix (and its MLP); train it and the task head."""
    config: Any = model.config
    previous = str(getattr(config, "_attn_implementation", None) or "eager")
    if previous not in ("sdpa", "eager"):
        raise ValueError(
            f"prefix tuning: attention implementation {previous!r} is not supported → load the "
            "model with attn_implementation='sdpa' or 'eager'"
        )
    layers = _attention_modules(model)
    if not all(layers):
        raise ValueError(f"{type(model).__name__}: no attention module in some layers")
    device = next(model.parameters()).device
    encoder = PrefixEncoder(prefix_shape(model, cfg.num_virtual_tokens), config.hidden_size, cfg)
    encoder.to(device)
    model.add_module(ENCODER_NAME, encoder)
    base: nn.Module = getattr(model, "base_model", model)
    state = _Prefix(encoder, previous, None)
    state.hook = base.register_forward_pre_hook(_compute(state))
    setattr(model, _STATE, state)
    for i, modules in enumerate(layers):
        for module in modules:
            setattr(module, _STATE, (state, i))
    _register()
    model.set_attn_implementation(ATTENTION_NAME)  # type: ignore[operator]
    if cfg.init == "vocab":
        encoder.start_from(_vocab_activations(model, base, state, cfg.num_virtual_tokens))
    train_only(model, {n for n, p in model.named_parameters() if n.startswith(f"{ENCODER_NAME}.")})
    return model


def _vocab_activations(
    model: nn.Module, base: nn.Module, state: _Prefix, length: int
) -> torch.Tensor:
    """Every layer's keys and values for ``length`` random vocabulary tokens (L, 2, H, P, D)."""
    embeddings = model.get_input_embeddings()  # type: ignore[operator]
    device = embeddings.weight.device
    ids = torch.randint(int(embeddings.weight.shape[0]), (1, length), device=device)  # torch RNG
    was_training = model.training
    model.eval()
    state.capture = {}
    try:
        with torch.no_grad():
            base(input_ids=ids)
        captured = state.capture
    finally:
        state.capture = None
        model.train(was_training)
    return torch.stack([torch.stack(captured[i]) for i in range(len(captured))])


def save_adapter(model: nn.Module, folder: Path) -> None:
    """The computed prefix (no MLP) and the trained head, as safetensors, with a config."""
    from safetensors.torch import save_file

    state: _Prefix = getattr(model, _STATE)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        n: p.detach().to("cpu").contiguous()
        for n, p in model.named_parameters()
        if p.requires_grad and not n.startswith(f"{ENCODER_NAME}.")
    }
    with torch.no_grad():
        tensors[PREFIX_PARAM] = state.encoder().detach().to("cpu").contiguous()
    save_file(tensors, str(folder / ADAPTER_WEIGHTS))
    config = {"method": "prefix", "shape": list(state.encoder.shape), "projected": False}
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=1), encoding="utf-8")


def base_model(model: nn.Module) -> nn.Module:
    """Remove the prefix, its hook and attributes: a plain transformers model (head trained)."""
    state: _Prefix | None = getattr(model, _STATE, None)
    if state is None:
        return model
    state.hook.remove()
    for module in model.modules():
        if module is not model and hasattr(module, _STATE):
            delattr(module, _STATE)
    delattr(model, _STATE)
    delattr(model, ENCODER_NAME)
    model.set_attn_implementation(state.previous)  # type: ignore[operator]
    return model


def load_adapter(model: nn.Module, folder: Path, cfg: PrefixConfig) -> nn.Module:
    """Add a plain prefix to a reloaded base model and load the saved (computed) prefix."""
    plain = cfg.model_copy(update={"projection": False, "init": "random"})
    model = apply(model, plain)
    load_trainable(model, folder)
    return model


def export(model: nn.Module) -> nn.Module | None:
    """A prefix is extra attention keys and values: it cannot be merged into the weights."""
    return None
