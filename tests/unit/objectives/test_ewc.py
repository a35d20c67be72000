"""EWC: the penalty against a hand computation, the Fisher against brute force, the contract."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification

from domaintune.config import ClassificationTaskConfig, EWCConfig
from domaintune.data.encode import Encoded
from domaintune.objectives import OBJECTIVES
from domaintune.objectives.fisher import estimate_fisher
from domaintune.tasks import build_task


def _model(tiny_bert: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=3)


def _context(model: torch.nn.Module, **extra: object) -> SimpleNamespace:
    pretrained = {n for n, _ in model.named_parameters() if not n.startswith("classifier")}
    fresh = {n for n, _ in model.named_parameters()} - pretrained
    accelerator = SimpleNamespace(is_main_process=True)
    return SimpleNamespace(
        model=model, pretrained=pretrained, accelerator=accelerator, extra={"fresh": fresh, **extra}
    )


def test_penalty_equals_the_hand_computation(tiny_bert: Path, tmp_path: Path) -> None:
    model = _model(tiny_bert)
    covered = {n: p for n, p in model.named_parameters() if not n.startswith("classifier")}
    generator = torch.Generator().manual_seed(1)
    fisher = {n: torch.rand(p.shape, generator=generator) for n, p in covered.items()}
    save_file(fisher, str(tmp_path / "fisher.safetensors"))
    objective = OBJECTIVES["ewc"](EWCConfig(name="ewc", weight=3.0, fisher_from=str(tmp_path)))
    objective.setup(_context(model))  # type: ignore[arg-type]
    assert objective.loss(model, {}, None).item() == 0.0  # at the anchor
    shifts = {n: torch.randn(p.shape, generator=generator) * 0.1 for n, p in covered.items()}
    with torch.no_grad():
        for name, param in covered.items():
            param.add_(shifts[name])
        model.classifier.weight.add_(1.0)  # the fresh head is free
    loss = objective.loss(model, {}, None)
    expected = (
        0.5
        * 3.0
        * sum(float((fisher[n].double() * shifts[n].double() ** 2).sum()) for n in covered)
    )
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert abs(loss.item() - expected) / expected < 1e-4
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in covered.values())
    assert model.classifier.weight.grad is None


def _encoded(rows: list[list[int]], labels: list[int]) -> Encoded:
    return Encoded(
        {
            "input_ids": [np.asarray(r, dtype=np.int32) for r in rows],
            "labels": [np.asarray([label], dtype=np.int64) for label in labels],
        }
    )


def _task() -> object:
    task = build_task(ClassificationTaskConfig(name="classification"))
    task.labels = ["a", "b", "c"]  # type: ignore[attr-defined]
    return task


def _log_probs(model: torch.nn.Module, row: list[int]) -> torch.Tensor:
    ids = torch.tensor([row])
    return torch.log_softmax(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits, -1)[
        0
    ]


def test_empirical_fisher_equals_per_example_brute_force(tiny_bert: Path) -> None:
    model = _model(tiny_bert).eval()
    params = dict(model.named_parameters())
    rows, labels = [[2, 7, 9, 3], [2, 11, 3], [2, 8, 8, 12, 14, 3]], [0, 2, 1]
    fisher = estimate_fisher(
        model, _task(), _encoded(rows, labels), params, estimator="empirical", samples=10
    )
    brute = {n: torch.zeros_like(p) for n, p in params.items()}
    for row, label in zip(rows, labels, strict=True):
        model.zero_grad()
        (-_log_probs(model, row)[label]).backward()
        for n, p in params.items():
            brute[n] += p.grad**2 / len(rows)
    for name in params:
        torch.testing.assert_close(fisher[name], brute[name], rtol=1e-4, atol=1e-10)


class _BagClassifier(torch.nn.Module):
    """A bag-of-words linear classifier: a transformers model's interface, far cheaper."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.EmbeddingBag(20, 4)
        self.classifier = torch.nn.Linear(4, 3)
        with torch.no_grad():
            self.classifier.weight.mul_(6.0)

    def forward(self, input_ids: torch.Tensor, **_: object) -> SimpleNamespace:
        return SimpleNamespace(logits=self.classifier(self.embed(input_ids.long())))


def test_true_fisher_converges_to_the_expectation_over_labels() -> None:
    """One example repeated: the sampled estimate tends to sum_c p(c|x) (d log p(c|x))^2."""
    model = _BagClassifier()
    params = dict(model.named_parameters())
    row = [2, 7, 9, 12, 3]
    fisher = estimate_fisher(
        model, _task(), _encoded([row] * 4000, [0] * 4000), params, samples=4000, seed=5
    )
    ids = torch.tensor([row])
    probs = torch.softmax(model(ids).logits, -1)[0].detach()
    assert probs.max() - probs.min() > 0.2  # unequal classes: sampling matters
    for name, param in params.items():
        exact = torch.zeros_like(param)
        for c in range(3):
            model.zero_grad()
            torch.log_softmax(model(ids).logits, -1)[0, c].backward()
            exact += probs[c] * param.grad**2
        assert abs(fisher[name].sum().item() - exact.sum().item()) / exact.sum().item() < 0.05
        # the empirical Fisher (always class 0) is a different quantity
    empirical = estimate_fisher(model, _task(), _encoded([row], [0]), params, estimator="empirical")
    assert not torch.allclose(empirical["classifier.weight"], fisher["classifier.weight"], rtol=0.2)


def test_ewc_needs_one_fisher_source() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one"):
        EWCConfig(name="ewc")
    with pytest.raises(ValidationError, match="online: true needs data"):
        EWCConfig(name="ewc", online=True, fisher_from="runs/x")
    assert EWCConfig(name="ewc", online=True, data=["a.conll"], fisher_from="runs/x").gamma == 1.0


class _WordTagger(torch.nn.Module):
    """Per-token emissions from an embedding: a token-classification model's interface."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(20, 3)
        with torch.no_grad():
            self.embed.weight.mul_(2.0)

    def forward(self, input_ids: torch.Tensor, **_: object) -> SimpleNamespace:
        return SimpleNamespace(logits=self.embed(input_ids.long()))  # (B, T, 3)


def test_true_fisher_of_a_crf_head_samples_whole_tag_sequences() -> None:
    """head: crf: the estimate tends to sum over legal paths of p(y|x) (d log p(y|x))^2."""
    import itertools

    from domaintune.config import TokenClassificationTaskConfig

    task = build_task(
        TokenClassificationTaskConfig(name="token_classification", head="crf"),
        {"labels": ["O", "B-A", "I-A"]},
    )
    assert task.crf is not None
    with torch.no_grad():
        task.crf.transitions.copy_(
            torch.tensor([[0.5, -1.0, 0.0], [0.2, 0.0, 1.5], [0.0, 1.0, 0.3]])
        )
    model = _WordTagger()
    params = {"embed.weight": model.embed.weight, "crf.transitions": task.crf.transitions}
    row, n = [4, 9, 13], 3000
    encoded = Encoded(
        {
            "input_ids": [np.asarray(row, dtype=np.int32)] * n,
            "labels": [np.zeros(3, dtype=np.int64)] * n,  # gold tags only mark the words
            "word_ids": [np.arange(3, dtype=np.int64)] * n,
        }
    )
    fisher = estimate_fisher(model, task, encoded, params, samples=n, seed=5)
    mask = torch.ones(1, 3, dtype=torch.bool)
    exact = {name: torch.zeros_like(p) for name, p in params.items()}
    legal = 0
    for path in itertools.product(range(3), repeat=3):
        tags = torch.tensor([path])
        for p in params.values():
            p.grad = None
        log_p = task.crf.log_likelihood(model(torch.tensor([row])).logits, tags, mask)[0]
        if log_p.item() < -100:  # an illegal path (O → I-A or a first I-A): probability 0
            continue
        legal += 1
        log_p.backward()
        for name, p in params.items():
            exact[name] += log_p.exp().item() * p.grad**2
    assert legal < 27  # the constraints removed some paths
    for name in params:
        got, want = fisher[name].sum().item(), exact[name].sum().item()
        assert abs(got - want) / want < 0.05, (name, got, want)
