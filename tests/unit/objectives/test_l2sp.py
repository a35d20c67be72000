"""Every objective returns a finite scalar whose gradient reaches the expected parameters."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import AutoModelForSequenceClassification

from domaintune.config import L2SPConfig
from domaintune.objectives import OBJECTIVES


def test_l2sp_penalty_and_gradient(tiny_bert: Path) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    pretrained = {n for n, _ in model.named_parameters() if not n.startswith("classifier")}
    objective = OBJECTIVES["l2sp"](L2SPConfig(name="l2sp", weight=0.5))
    objective.setup(SimpleNamespace(model=model, pretrained=pretrained))  # type: ignore[arg-type]
    assert objective.loss(model, {}, None).item() == 0.0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    loss = objective.loss(model, {}, None)
    assert loss.dim() == 0 and torch.isfinite(loss)
    expected = (
        0.5 * 0.5 * sum(p.numel() * 0.01 for n, p in model.named_parameters() if n in pretrained)
    )
    assert abs(loss.item() - expected) / expected < 1e-3
    loss.backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in model.named_parameters()
        if n in pretrained
    )
    assert model.classifier.weight.grad is None  # the new head is free
