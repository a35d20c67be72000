"""FGM and PGD: one backward gives the classic two-backward gradients; contract; end to end."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from domaintune import api
from domaintune.config import FGMConfig, PGDConfig, load_recipe
from domaintune.objectives import OBJECTIVES
from tests.conftest import recipe_dict

EPSILON, ALPHA, STEPS, WEIGHT = 0.7, 0.3, 3, 0.5


def _task() -> SimpleNamespace:
    def loss(logits: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        total = F.cross_entropy(logits, batch["labels"], reduction="sum")
        return total, torch.tensor(float(len(batch["labels"])))

    return SimpleNamespace(loss=loss)


def _batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    ids = torch.randint(5, 60, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding: never perturbed
    mask[3, 4:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


def _model(folder: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=2).train()


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}


def _one_backward(model: torch.nn.Module, name: str, batch: dict[str, Any]) -> dict[str, Any]:
    """What the loop does: clean forward, objective.loss, one backward of the sum."""
    cfg = (
        FGMConfig(name="fgm", epsilon=EPSILON, weight=WEIGHT)
        if name == "fgm"
        else PGDConfig(name="pgd", epsilon=EPSILON, alpha=ALPHA, steps=STEPS, weight=WEIGHT)
    )
    objective = OBJECTIVES[name](cfg)
    objective.setup(SimpleNamespace(model=model, task=_task(), accelerator=None))
    outputs = model(**_inputs(batch))
    total, count = _task().loss(outputs.logits, batch)
    objective.on_loss_scale(1.0 / count)
    extra = objective.loss(model, batch, outputs)
    assert extra.dim() == 0 and torch.isfinite(extra)
    (total / count + extra).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _unit(g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Brute force: each example's gradient over its real tokens, divided by its L2 norm."""
    out = torch.zeros_like(g)
    for i in range(len(g)):
        real = g[i][mask[i] == 1]
        out[i][mask[i] == 1] = real / real.pow(2).sum().sqrt()
    return out


def _project(r: torch.Tensor) -> torch.Tensor:
    out = r.clone()
    for i in range(len(r)):
        norm = r[i].pow(2).sum().sqrt()
        if norm > EPSILON:
            out[i] = r[i] * EPSILON / norm
    return out


def _two_backward(model: torch.nn.Module, name: str, batch: dict[str, Any]) -> dict[str, Any]:
    """The classic recipe: backward clean; perturb; forward + backward adversarial; restore."""
    state: dict[str, Any] = {"r": None, "out": None}

    def hook(module: torch.nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        if state["r"] is not None:
            out = out + state["r"]
        out.retain_grad()
        state["out"] = out
        return out

    model.get_input_embeddings().register_forward_hook(hook)
    n = float(len(batch["labels"]))
    loss = F.cross_entropy(model(**_inputs(batch)).logits, batch["labels"], reduction="sum") / n
    loss.backward()
    grad, mask = state["out"].grad, batch["attention_mask"]
    steps, alpha = (1, EPSILON) if name == "fgm" else (STEPS, ALPHA)
    backup = {k: p.grad.clone() for k, p in model.named_parameters()}
    r = torch.zeros_like(grad)
    for t in range(steps):
        r = _project(r + alpha * _unit(grad, mask))
        if t < steps - 1:
            model.zero_grad()
        else:  # the last attack adds its gradient to the clean one
            for k, p in model.named_parameters():
                p.grad = backup[k].clone()
        state["r"] = r
        logits = model(**_inputs(batch)).logits
        adv = WEIGHT * F.cross_entropy(logits, batch["labels"], reduction="sum") / n
        adv.backward()
        grad = state["out"].grad
    state["r"] = None  # restore
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["fgm", "pgd"])
def test_one_backward_equals_the_two_backward_formulation(
    tiny_bert_no_dropout: Path, name: str
) -> None:
    base = _model(tiny_bert_no_dropout)
    batch = _batch()
    ours = _one_backward(copy.deepcopy(base), name, batch)
    classic = _two_backward(copy.deepcopy(base), name, batch)
    assert ours.keys() == classic.keys() and len(ours) > 20
    for key, value in classic.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-7, msg=key)
    plain = copy.deepcopy(base)
    F.cross_entropy(plain(**_inputs(batch)).logits, batch["labels"]).backward()
    weight = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(plain.get_parameter(weight).grad, ours[weight])  # r mattered


@pytest.mark.parametrize("name", ["fgm", "pgd"])
def test_gradient_reaches_lora_weights_with_frozen_embeddings(
    tiny_bert_no_dropout: Path, name: str
) -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        _model(tiny_bert_no_dropout),
        LoraConfig(r=2, target_modules=["query", "value"], modules_to_save=["classifier"]),
    )
    batch = _batch()
    cfg = FGMConfig(name="fgm") if name == "fgm" else PGDConfig(name="pgd")
    objective = OBJECTIVES[name](cfg)
    objective.setup(SimpleNamespace(model=model, task=_task(), accelerator=None))
    outputs = model(**_inputs(batch))
    loss = objective.loss(model, batch, outputs)  # without on_loss_scale: local mean
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    for n, p in trainable.items():
        assert p.grad is not None, n
        if "lora_A" not in n:  # lora_B starts at zero, so lora_A's first gradient is zero
            assert p.grad.abs().sum() > 0, n
    assert model.get_input_embeddings().weight.grad is None  # frozen, yet perturbed


def test_perturbation_is_off_in_evaluation(tiny_bert_no_dropout: Path) -> None:
    model = _model(tiny_bert_no_dropout)
    batch = _batch()
    reference = model.eval()(**_inputs(batch)).logits
    objective = OBJECTIVES["fgm"](FGMConfig(name="fgm"))
    objective.setup(SimpleNamespace(model=model, task=_task(), accelerator=None))
    with torch.no_grad():
        assert torch.equal(model(**_inputs(batch)).logits, reference)
    assert objective.hook.seen == []


@pytest.mark.parametrize(
    ("objective", "method"),
    [
        ({"name": "fgm", "epsilon": 1.0}, {"name": "full"}),
        ({"name": "fgm", "epsilon": 1.0}, {"name": "lora", "r": 4, "alpha": 8}),
        ({"name": "pgd", "steps": 2}, {"name": "full"}),
        ({"name": "pgd", "steps": 2}, {"name": "lora", "r": 4, "alpha": 8}),
    ],
)
def test_runs_from_a_recipe(
    tiny_bert: Path,
    cls_data: dict[str, Path],
    tmp_path: Path,
    objective: dict[str, Any],
    method: dict[str, Any],
) -> None:
    recipe = load_recipe(
        {
            **recipe_dict(tiny_bert, cls_data, epochs=1, max_steps=2, log_every=1),
            "objectives": [objective],
            "method": method,
        }
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    assert result.steps == 2 and 0.0 <= result.test["accuracy"] <= 1.0
    losses = [
        json.loads(line)["loss"]
        for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
        if '"train"' in line
    ]
    assert len(losses) == 2 and all(x == x for x in losses)  # finite (no NaN) training losses
