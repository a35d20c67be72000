"""Multi-task: task sampling against p_i ∝ n_i^(1/T), loss weights, per-task metrics, gradients."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from domaintune.config import load_recipe
from domaintune.data.pipeline import RawSplits
from domaintune.data.task_sampling import MultiTaskBatchSampler, apportion, task_shares
from domaintune.models.load import load_model, load_tokenizer, resolve_source
from domaintune.tasks import build_task
from domaintune.tasks.inference import infer
from domaintune.tasks.multitask import MEAN_METRIC, MultiTask
from tests.conftest import write_classification, write_conll


def _sampler(
    sizes: list[int], exponent: float, batch: int = 10, **kw: Any
) -> MultiTaskBatchSampler:
    task_ids = [i for i, n in enumerate(sizes) for _ in range(n)]
    lengths = [5 + (j * 7) % 40 for j in range(len(task_ids))]
    return MultiTaskBatchSampler(task_ids, lengths, batch, seed=3, exponent=exponent, **kw)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0, math.inf])
def test_batch_shares_follow_the_formula(temperature: float) -> None:
    sizes = [1000, 90, 20]
    sampler = _sampler(sizes, 0.0 if math.isinf(temperature) else 1 / temperature)
    weights = [1.0 if math.isinf(temperature) else n ** (1 / temperature) for n in sizes]
    expected = [w / sum(weights) for w in weights]  # p_i = n_i^(1/T) / sum_j n_j^(1/T)
    assert sampler.shares == pytest.approx(expected)
    total = 100 + 9 + 2  # one pass over every task: sum of ceil(n_i / B)
    assert len(sampler) == total
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        assert len(batches) == total
        owners = [{(j >= 1000) + (j >= 1090) for j in b} for b in batches]
        assert all(len(o) == 1 for o in owners)  # one task per batch
        counts = [sum(o == {i} for o in owners) for i in range(3)]
        assert sum(counts) == total
        for i in range(3):
            assert abs(counts[i] - total * expected[i]) < 1.0


def test_proportional_sampling_sees_every_example_once_an_epoch() -> None:
    sampler = _sampler([100, 40, 60], 1.0)
    seen = sorted(j for b in sampler.batches() for j in b)
    assert seen == list(range(200))


def test_small_tasks_cycle_through_their_examples_when_upsampled() -> None:
    sampler = _sampler([1000, 20], 0.0)  # uniform: the 20 examples fill half of the 102 batches
    small = [b for b in sampler.batches() if b[0] >= 1000]
    assert len(small) == 51
    assert {j for b in small for j in b} == set(range(1000, 1020))


def test_order_is_a_pure_function_of_seed_and_epoch() -> None:
    a, b = _sampler([50, 30], 0.5), _sampler([50, 30], 0.5)
    a.set_epoch(2)
    b.set_epoch(2)
    assert a.batches() == b.batches()
    b.set_epoch(3)
    assert a.batches() != b.batches()


def test_batches_are_length_grouped_inside_each_task() -> None:
    def padding(group: bool) -> int:
        sampler = _sampler([400, 300], 1.0, batch=8, group_by_length=group)
        lengths = [5 + (j * 7) % 40 for j in range(700)]
        return sum(
            max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in sampler
        )

    assert padding(True) < padding(False) / 3


def test_apportion_matches_a_hand_computation() -> None:
    assert apportion(10, [0.55, 0.3, 0.15]) == [6, 3, 1]  # 5.5 3 1.5: ties go to the first
    assert apportion(7, task_shares([1, 1, 1], 1.0)) == [3, 2, 2]
    assert sum(apportion(101, task_shares([5, 17, 300], 0.5))) == 101


# ----------------------------------------------------------------------- task and model


def _multitask(tmp_path: Path, model: Path, weights: tuple[float, float] = (1.0, 1.0)) -> Any:
    cls, ner = write_classification(tmp_path / "cls", 16), write_conll(tmp_path / "ner", 16)

    def data(paths: dict[str, Path], fmt: str) -> dict[str, Any]:
        return {"format": fmt, "train": str(paths["train"]), "test": str(paths["test"])}

    recipe = load_recipe(
        {
            "task": {
                "name": "multitask",
                "tasks": [
                    {
                        "name": "cls",
                        "task": {"name": "classification"},
                        "data": data(cls, "jsonl"),
                        "weight": weights[0],
                        "metric": "accuracy",
                    },
                    {
                        "name": "ner",
                        "task": {"name": "token_classification"},
                        "data": data(ner, "conll"),
                        "weight": weights[1],
                    },
                ],
            },
            "model": {"name": str(model)},
        }
    )
    task = build_task(recipe.task)
    assert isinstance(task, MultiTask)
    raw = task.load_splits()
    task.fit_labels(raw)
    source = resolve_source(recipe.model)
    tokenizer = load_tokenizer(source)
    task.bind("bert", tokenizer)
    encoded = task.encode(raw.splits["train"], tokenizer, 64)
    torch.manual_seed(0)
    module = task.wrap(load_model(source, task.auto_class()))
    return task, raw, encoded, module, tokenizer


def _batch(task: Any, encoded: Any, which: int, pad: int) -> dict[str, torch.Tensor]:
    members = [j for j, t in enumerate(task.task_ids(encoded)) if t == which][:4]
    return task.collate(encoded.subset(members).features, pad, training=True)


def test_each_task_reads_its_own_data_and_labels(tiny_bert: Path, tmp_path: Path) -> None:
    task, raw, encoded, _, _ = _multitask(tmp_path, tiny_bert)
    assert isinstance(raw, RawSplits) and set(raw.splits) == {"train", "validation", "test"}
    assert task.tasks[0].labels == ["negative", "positive"]
    assert task.tasks[1].labels == ["O", "B-Disease", "I-Disease"]
    assert len(encoded) == len(raw.splits["train"])
    assert sorted(set(task.task_ids(encoded))) == [0, 1]


def test_loss_weights_scale_each_tasks_loss(tiny_bert: Path, tmp_path: Path) -> None:
    task, _, encoded, module, tokenizer = _multitask(tmp_path, tiny_bert, weights=(0.5, 3.0))
    module.eval()
    for which, weight in ((0, 0.5), (1, 3.0)):
        batch = _batch(task, encoded, which, tokenizer.pad_token_id)
        logits = module(**{k: v for k, v in batch.items() if k != "labels"}).logits
        total, count = task.loss(logits, batch)
        plain, plain_count = task.tasks[which].loss(logits, batch)
        assert torch.allclose(total, weight * plain) and torch.equal(count, plain_count)


def test_gradient_reaches_the_encoder_and_only_the_batchs_head(
    tiny_bert: Path, tmp_path: Path
) -> None:
    task, _, encoded, module, tokenizer = _multitask(tmp_path, tiny_bert)
    for which, name in enumerate(task.names):
        module.zero_grad(set_to_none=True)
        batch = _batch(task, encoded, which, tokenizer.pad_token_id)
        logits = module(**{k: v for k, v in batch.items() if k != "labels"}).logits
        total, count = task.loss(logits, batch)
        loss = total / count
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        for other, head in module.heads.items():
            grads = [p.grad for p in head.parameters()]
            if other == name:
                assert all(g is not None and g.abs().sum() > 0 for g in grads), name
            else:
                assert all(g is None for g in grads), other
        encoder = dict(module.encoder.named_parameters())
        layer = encoder["encoder.layer.0.attention.self.query.weight"].grad
        assert layer is not None and layer.abs().sum() > 0
        assert encoder["embeddings.word_embeddings.weight"].grad.abs().sum() > 0


def test_metrics_per_task_and_their_mean(tiny_bert: Path, tmp_path: Path) -> None:
    task, raw, _, module, tokenizer = _multitask(tmp_path, tiny_bert)
    test = task.encode(raw.splits["test"], tokenizer, 64)
    outputs = infer(module, task, test, 8, tokenizer.pad_token_id)
    scores = task.metrics(outputs, raw.splits["test"], encoded=test)
    assert {"cls/accuracy", "cls/f1_macro", "ner/entity_f1", MEAN_METRIC} <= set(scores)
    assert scores[MEAN_METRIC] == pytest.approx(
        (scores["cls/accuracy"] + scores["ner/entity_f1"]) / 2
    )
