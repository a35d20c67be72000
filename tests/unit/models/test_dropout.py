"""The cheap CPU dropout: right rate and scale, exact gradients, swapped in and out cleanly."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from domaintune.models.dropout import ATTENTION_NAME, FastDropout, cheap_dropout, keep_mask
from domaintune.training.allocator import keep_freed_memory


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_keep_mask_has_the_drop_rate(p: float) -> None:
    torch.manual_seed(0)
    keep = keep_mask(torch.Size([400, 1000]), p, torch.device("cpu"))
    assert keep.dtype == torch.bool and keep.shape == (400, 1000)
    assert abs(keep.float().mean().item() - (1 - p)) < 3e-3  # 400k draws: 4 sigma < 3e-3


def test_keep_mask_fields_are_independent() -> None:
    # Neighbouring elements come from the same 64-bit draw: they must not be correlated.
    torch.manual_seed(1)
    keep = keep_mask(torch.Size([1_000_000]), 0.5, torch.device("cpu")).float()
    for offset in (1, 2, 3, 4):
        both = (keep[:-offset] * keep[offset:]).mean().item()
        assert abs(both - 0.25) < 3e-3


def test_fast_dropout_scales_kept_values_and_gradients() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 16, 32, requires_grad=True)
    layer = FastDropout(0.2)
    y = layer(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    y.backward(torch.ones_like(y))
    assert x.grad is not None
    torch.testing.assert_close(x.grad, kept.float() / 0.8)
    layer.eval()
    assert torch.equal(layer(x), x)


def test_the_same_seed_draws_the_same_mask() -> None:
    x = torch.ones(64, 64)
    torch.manual_seed(7)
    a = FastDropout(0.1)(x)
    torch.manual_seed(7)
    b = FastDropout(0.1)(x)
    assert torch.equal(a, b)


def test_cheap_dropout_swaps_modules_and_attention_and_restores_them(tiny_bert: Path) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    before = model.config._attn_implementation
    ids = torch.randint(5, 40, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0  # padding, so the attention mask matters
    model.eval()
    reference = model(input_ids=ids, attention_mask=mask).logits
    with cheap_dropout(model):
        assert model.config._attn_implementation == ATTENTION_NAME
        dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
        assert dropouts and all(type(m) is FastDropout for m in dropouts)
        # Evaluation (SDPA path) gives the same logits as the untouched model.
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, reference)
        # Training with dropout ~0 (eager path with the mask) gives them too.
        model.train()
        for m in dropouts:
            m.p = 0.0
        for layer in model.bert.encoder.layer:
            layer.attention.self.dropout.p = 1e-12
        out = model(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-4)
        out.sum().backward()
    assert model.config._attn_implementation == before
    assert all(type(m) is nn.Dropout for m in model.modules() if isinstance(m, nn.Dropout))
    assert model.training  # the restored modules follow the model's mode


def test_keep_freed_memory_takes_effect_on_glibc() -> None:
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
    assert torch.ones(1 << 22).sum().item() == 1 << 22  # allocation still works afterwards
