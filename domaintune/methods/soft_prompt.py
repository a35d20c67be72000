"""Prompt tuning (Lester et al., 2021), written by hand for encoders and decoders.

``P`` learned input embeddings (the soft prompt) are inserted into every input sequence; only
they and the task head train.

Why not peft: with peft 0.21.2 and transformers 5.24, peft's prompt tuning returns token
classification logits with the virtual tokens included (B, T + P, C), and for Llama sequence
classification it calls the model with ``inputs_embeds``, so transformers cannot find the last
non-pad token ("will not detect padding tokens in inputs_embeds") and pools the wrong position
in right-padded batches.

How: a forward pre-hook on the base model (``model.base_model``: BertModel, LlamaModel...)
embeds ``input_ids``, inserts the prompt and passes ``inputs_embeds`` with the attention mask,
token types and position ids extended; a forward hook on the same module drops the virtual
positions from its hidden states. The task model above it therefore keeps ``input_ids`` and sees
(B, T, H) again: token logits have the original length, decoders pool the last non-pad token of
the real input, and wrappers that call the base model directly (masked/causal LM on target
positions) work unchanged.

Where: encoders (bidirectional attention) get the prompt after their first token, so [CLS]
stays at position 0, where BERT's pooler reads it; decoders (causal attention) get it at the
start, so every real token can attend to it. Absolute positions shift by ``P`` (BERT:
``data.max_length + P`` must fit the position embeddings), and so do rotary positions. A soft
prompt cannot be merged: ``final/`` holds the base model (with the trained head) and
``final/adapter/`` the prompt. With a KV cache (generation), the prompt goes in at the first
step only; later steps extend the mask and positions past it. Gradient checkpointing and cached
generation work (both tested).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domaintune.config.methods import PromptTuningConfig
from domaintune.errors import ConfigError
from domaintune.methods.layers import block_list, load_trainable, save_trainable, train_only

PROMPT_NAME = "soft_prompt"  # child module of the model: its parameter is "soft_prompt.weight"
_STATE = "_domaintune_soft_prompt"  # attribute on the model


class SoftPrompt(nn.Module):
    """The ``P`` × hidden prompt embeddings."""

    def __init__(self, length: int, hidden: int) -> None:
        """An uninitialised (P, H) parameter; ``apply`` initialises it."""
        super().__init__()
        self.weight = nn.Parameter(torch.empty(length, hidden))


@dataclass
class _Prompt:
    """The hooks' shared state."""

    prompt: SoftPrompt
    at: int  # insert position: 1 (after [CLS]) for encoders, 0 for decoders
    max_positions: int | None  # absolute position embeddings, if the model has them
    names: list[str]  # the base model's forward parameters, to bind positional arguments
    hooks: list[Any] = field(default_factory=list)
    inserted: bool = True  # whether the current forward inserted the prompt


def _insert(tensor: torch.Tensor, at: int, middle: torch.Tensor) -> torch.Tensor:
    """``tensor`` with ``middle`` inserted at position ``at`` of dimension 1."""
    return torch.cat([tensor[:, :at], middle, tensor[:, at:]], dim=1)


def _positions(position_ids: torch.Tensor, at: int, length: int) -> torch.Tensor:
    """Given position ids (B or 1, T) → (B or 1, T + P): the prompt continues the count."""
    steps = torch.arange(length, device=position_ids.device)[None]  # (1, P)
    if not at:  # decoders: the prompt takes 0..P-1, the real tokens move up by P
        return torch.cat([steps.expand(position_ids.shape[0], -1), position_ids + length], 1)
    first = position_ids[:, :at]  # encoders: [CLS] keeps its position, the prompt follows it
    return torch.cat([first, first[:, -1:] + 1 + steps, position_ids[:, at:] + length], 1)


def _pre_hook(state: _Prompt) -> Callable[..., tuple[tuple[Any, ...], dict[str, Any]]]:
    def hook(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Embed the input and insert the prompt; extend the mask, token types and positions."""
        kwargs = {**dict(zip(state.names, args, strict=False)), **kwargs}
        length = state.prompt.weight.shape[0]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        state.inserted = cache is None or cache.get_seq_length() == 0
        if not state.inserted:  # decoding with a KV cache: the prompt is in the cache already
            mask = kwargs.get("attention_mask")
            if mask is not None:
                ones = mask.new_ones(mask.shape[0], length)
                kwargs["attention_mask"] = _insert(mask, state.at, ones)
            if kwargs.get("position_ids") is not None:
                kwargs["position_ids"] = kwargs["position_ids"] + length
            return (), kwargs
        input_ids = kwargs.pop("input_ids", None)
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            embeds = module.get_input_embeddings()(input_ids)  # type: ignore[operator]
        batch, width = embeds.shape[:2]
        if state.max_positions is not None and width + length > state.max_positions:
            raise ConfigError(
                f"method.num_virtual_tokens: {length}: inputs of {width} tokens plus the soft "
                f"prompt exceed the model's {state.max_positions} positions → set "
                f"data.max_length to at most {state.max_positions - length}"
            )
        prompt = state.prompt.weight.to(embeds.dtype).expand(batch, -1, -1)  # (B, P, H)
        kwargs["inputs_embeds"] = _insert(embeds, state.at, prompt)  # (B, T + P, H)
        mask = kwargs.get("attention_mask")
        if mask is not None:
            if mask.dim() != 2:
                raise ValueError("prompt tuning needs a 2D attention mask (B, T)")
            kwargs["attention_mask"] = _insert(mask, state.at, mask.new_ones(batch, length))
        types = kwargs.get("token_type_ids")
        if types is not None:  # the prompt takes the first token's segment (0)
            kwargs["token_type_ids"] = _insert(types, state.at, types[:, :1].expand(-1, length))
        positions = kwargs.get("position_ids")
        if positions is not None:
            kwargs["position_ids"] = _positions(positions, state.at, length)
        return (), kwargs

    return hook


def _post_hook(state: _Prompt) -> Callable[..., Any]:
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        """Drop the virtual positions from the hidden states: (B, T + P, H) → (B, T, H)."""
        if not state.inserted:
            return output
        at, length = state.at, state.prompt.weight.shape[0]

        def real(hidden: torch.Tensor) -> torch.Tensor:
            return torch.cat([hidden[:, :at], hidden[:, at + length :]], dim=1)

        if isinstance(output, tuple):
            return (real(output[0]), *output[1:])
        output["last_hidden_state"] = real(output["last_hidden_state"])
        if output.get("hidden_states") is not None:
            output["hidden_states"] = tuple(real(h) for h in output["hidden_states"])
        return output

    return hook


def is_causal(model: nn.Module) -> bool:
    """Whether the model's attention is causal (a decoder)."""
    return any(getattr(m, "is_causal", False) for m in block_list(model).modules())


def _max_positions(base: nn.Module) -> int | None:
    """The size of an absolute position-embedding table (BERT), or None (rotary, ALiBi...)."""
    embeddings = getattr(base, "embeddings", None)
    table = getattr(embeddings, "position_embeddings", None)
    return int(table.num_embeddings) if isinstance(table, nn.Embedding) else None


def apply(model: nn.Module, cfg: PromptTuningConfig) -> nn.Module:
    """Add the soft prompt; train it and the task head."""
    base: nn.Module = getattr(model, "base_model", model)
    table = model.get_input_embeddings().weight  # type: ignore[operator]  # (V, H)
    prompt = SoftPrompt(cfg.num_virtual_tokens, int(table.shape[1])).to(table.device)
    with torch.no_grad():
        if cfg.init == "vocab":  # random vocabulary tokens, drawn from torch's RNG
            ids = torch.randint(int(table.shape[0]), (cfg.num_virtual_tokens,))
            prompt.weight.copy_(table[ids.to(table.device)].float())
        else:
            prompt.weight.normal_(0.0, float(table.float().std()))
    model.add_module(PROMPT_NAME, prompt)
    names = list(inspect.signature(base.forward).parameters)
    state = _Prompt(prompt, 0 if is_causal(model) else 1, _max_positions(base), names)
    state.hooks = [
        base.register_forward_pre_hook(_pre_hook(state), with_kwargs=True),
        base.register_forward_hook(_post_hook(state)),
    ]
    setattr(model, _STATE, state)
    train_only(model, {f"{PROMPT_NAME}.weight"})
    return model


def save_adapter(model: nn.Module, folder: Path) -> None:
    """The soft prompt and the trained head (safetensors) with the adapter config."""
    state: _Prompt = getattr(model, _STATE)
    save_trainable(
        model,
        folder,
        {
            "method": "prompt_tuning",
            "num_virtual_tokens": int(state.prompt.weight.shape[0]),
            "position": "after_first" if state.at else "start",
        },
    )


def base_model(model: nn.Module) -> nn.Module:
    """Remove the prompt and its hooks: a plain transformers model (with the trained head)."""
    state: _Prompt | None = getattr(model, _STATE, None)
    if state is None:
        return model
    for hook in state.hooks:
        hook.remove()
    delattr(model, _STATE)
    delattr(model, PROMPT_NAME)
    return model


def load_adapter(model: nn.Module, folder: Path, cfg: PromptTuningConfig) -> nn.Module:
    """Add the soft prompt to a reloaded base model and load the trained prompt and head."""
    model = apply(model, cfg)
    load_trainable(model, folder)
    return model


def export(model: nn.Module) -> nn.Module | None:
    """A soft prompt is extra input: it cannot be merged into the weights."""
    return None
