"""Cheaper dropout masks for training on CPU.

PyTorch draws a dropout mask with ``bernoulli_``, one Mersenne-Twister number per element: about
6 ns an element on the project CPU, 8 to 11% of a MiniLM training step (bench/profile_step.py).
Here each 64-bit draw of the same generator gives four 15-bit uniform numbers, and an element is
kept when its number is at least ``round(p * 32768)`` (the drop rate is exact to 1/32768): about
1 ns an element. No library offers this, hence the hand-written module. The draws come from
torch's global generator, so checkpoints restore them and resumed runs stay exact.

Attention dropout is a functional call inside transformers' attention functions, not a module,
so a small attention function (registered through transformers' ``AttentionInterface``) does
the eager computation with this mask while training, and defers to SDPA otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

ATTENTION_NAME = "domaintune_cpu_dropout"
_FIELD = 1 << 15  # each 64-bit draw holds four 15-bit uniform fields (torch fills 63 bits)


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A boolean mask that is True with probability ``1 - p`` (exact to 1/32768)."""
    n = shape.numel()
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()
    fields = draws.view(torch.int16)[:n].view(shape).bitwise_and_(_FIELD - 1)
    return fields >= round(p * _FIELD)


class _Dropout(torch.autograd.Function):
    """``x * mask / (1 - p)``, keeping only the boolean mask for the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = keep_mask(x.shape, p, x.device)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return x.mul(keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout with the cheap mask; identity when not training or ``p == 0``."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    return _Dropout.apply(x, p)  # type: ignore[no-any-return]


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the cheap mask (same ``p``, same expected value, same state dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop elements of ``x`` while training."""
        return fast_dropout(x, self.p, self.training)


def _attention(
    module: nn.Module,
    query: torch.Tensor,  # (B, H, Tq, D)
    key: torch.Tensor,  # (B, Hkv, Tk, D)
    value: torch.Tensor,  # (B, Hkv, Tk, D)
    attention_mask: torch.Tensor | None,  # additive (B, 1, Tq, Tk), from eager_mask
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eager attention with the cheap dropout mask; SDPA when no dropout applies."""
    if dropout == 0.0 or not module.training:  # SDPA takes the additive mask as it is
        return sdpa_attention_forward(  # type: ignore[no-any-return]
            module, query, key, value, attention_mask, scaling=scaling, dropout=0.0, **kwargs
        )
    if key.shape[1] != query.shape[1]:  # grouped-query attention: share each K/V head
        repeat = query.shape[1] // key.shape[1]
        key = key.repeat_interleave(repeat, dim=1)
        value = value.repeat_interleave(repeat, dim=1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, Tq, Tk)
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    probs = fast_dropout(torch.softmax(scores, dim=-1), dropout)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()  # (B, Tq, H, D)
    return out, probs


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(ATTENTION_NAME, _attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, eager_mask)


def _attention_dropout(config: Any) -> float:
    for name in ("attention_probs_dropout_prob", "attention_dropout"):
        value = getattr(config, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return 0.0


@contextmanager
def cheap_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Swap every ``nn.Dropout`` (and attention dropout) of ``model`` for the cheap mask.

    The model's classes and weights are untouched; on exit the original modules and attention
    implementation are put back, so what is saved afterwards is a plain transformers model.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                fast = FastDropout(child.p)
                fast.train(child.training)
                setattr(parent, name, fast)
                swapped.append((parent, name, child))
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    switch = (
        config is not None
        and previous in ("sdpa", "eager")
        and _attention_dropout(config) > 0
        and hasattr(model, "set_attn_implementation")
    )
    if switch:
        _register()
        model.set_attn_implementation(ATTENTION_NAME)  # type: ignore[operator]
    try:
        yield model
    finally:
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
        if switch:
            model.set_attn_implementation(previous)  # type: ignore[operator]
