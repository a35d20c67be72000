"""DANN: gradient reversal, lambda schedule, gradients on classifier and encoder, end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from domaintune import api
from domaintune.config import (
    ClassificationTaskConfig,
    DANNConfig,
    DataConfig,
    TrainConfig,
    load_recipe,
)
from domaintune.data.readers import read_split
from domaintune.objectives import OBJECTIVES
from domaintune.objectives.domain_adversarial import GradientReversal, dann_lambda
from domaintune.tasks import build_task
from tests.conftest import recipe_dict, write_classification


def test_gradient_reversal_flips_and_scales_the_gradient() -> None:
    x = torch.randn(3, 5, requires_grad=True)
    w = torch.randn(3, 5)
    y = GradientReversal.apply(x, 0.3)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * w)


def test_lambda_schedule_by_hand() -> None:
    assert dann_lambda(0.0, 10.0) == 0.0
    assert dann_lambda(0.5, 10.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.98661
    assert 0.9999 < dann_lambda(1.0, 10.0) < 1.0


def _objective(folder: Path, tmp_path: Path, **cfg: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    """A DANN objective set up on a tiny model, and one source batch."""
    data = write_classification(tmp_path / "src")
    target = write_classification(tmp_path / "tgt", n_train=20, seed=1)["train"]
    task = build_task(ClassificationTaskConfig(name="classification"))
    task.labels = ["negative", "positive"]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=2).train()
    data_cfg = DataConfig(train=str(data["train"]))
    objective = OBJECTIVES["dann"](DANNConfig(name="dann", target=str(target), **cfg))
    objective.setup(
        SimpleNamespace(
            model=model,
            task=task,
            tokenizer=tokenizer,
            accelerator=None,
            data=data_cfg,
            train_cfg=TrainConfig(batch_size=4),
            encode=lambda examples: task.encode(examples, tokenizer, 32),
        )
    )
    source = task.encode(read_split(str(data["train"]), data_cfg, "text")[:4], tokenizer, 32)
    batch = task.collate(source.features, tokenizer.pad_token_id, training=True)
    return objective, model, task, batch


def _grads(objective: Any, model: Any, batch: dict[str, Any], lam: float) -> dict[str, Any]:
    objective.on_step_begin(3, 0)
    objective.lam = lam
    model.zero_grad()
    objective.classifier.zero_grad()
    outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
    loss = objective.loss(model, batch, outputs)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    named = [
        *model.named_parameters(),
        *(("dc." + n, p) for n, p in objective.classifier.named_parameters()),
    ]
    return {n: None if p.grad is None else p.grad.clone() for n, p in named}


def test_gradient_reaches_classifier_and_encoder_reversed(
    tiny_bert_no_dropout: Path, tmp_path: Path
) -> None:
    objective, model, _, batch = _objective(tiny_bert_no_dropout, tmp_path, dropout=0.0)
    objective.on_train_begin(10, 10, 0)
    reversed_ = _grads(objective, model, batch, 0.5)
    plain = _grads(objective, model, batch, -1.0)  # -(-1) = +1: the unreversed gradient
    encoder = [n for n in reversed_ if n.startswith("bert.encoder.")]
    assert encoder and all(reversed_[n].abs().sum() > 0 for n in encoder)
    for name in encoder:
        torch.testing.assert_close(reversed_[name], -0.5 * plain[name], rtol=1e-5, atol=1e-8)
    head = [n for n in reversed_ if n.startswith("dc.")]
    assert head and all(reversed_[n].abs().sum() > 0 for n in head)
    for name in head:  # the domain classifier itself learns to tell the domains apart
        torch.testing.assert_close(reversed_[name], plain[name])
    assert reversed_["classifier.weight"] is None  # the task head plays no part


def test_target_batches_are_a_pure_function_of_seed_and_draw(
    tiny_bert_no_dropout: Path, tmp_path: Path
) -> None:
    objective, *_ = _objective(tiny_bert_no_dropout, tmp_path)
    first = [objective.target_indices(d) for d in range(5)]  # 20 targets, 4 a draw: one pass
    assert sorted(i for draw in first for i in draw) == list(range(20))
    assert [objective.target_indices(d) for d in range(5)] == first
    assert objective.target_indices(5) != first[0]  # the next pass is reshuffled


def _recipe(model: Path, data: dict[str, Path], target: dict[str, Path], **train: Any) -> Any:
    return {
        **recipe_dict(model, data, **train),
        "objectives": [
            {"name": "dann", "target": str(target["train"]), "test": str(target["test"])}
        ],
    }


@pytest.mark.parametrize("method", [{"name": "full"}, {"name": "lora", "r": 4, "alpha": 8}])
def test_runs_from_a_recipe_and_reports_target_metrics(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path, method: dict[str, Any]
) -> None:
    target = write_classification(tmp_path / "target", n_train=40, seed=2)
    recipe = load_recipe(
        {**_recipe(tiny_bert, cls_data, target, epochs=1, max_steps=4), "method": method}
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    results = json.loads((result.run_dir / "results.json").read_text())
    assert results["target"]["file"] == str(target["test"])
    assert results["target"]["examples"] == 32
    assert 0.0 <= results["target"]["test"]["accuracy"] <= 1.0
    assert 0.0 <= results["test"]["accuracy"] <= 1.0  # the source test split, as always
    final = {p.name for p in (result.run_dir / "final").iterdir()}
    assert "model.safetensors" in final  # the domain classifier is not in it:
    from safetensors.torch import load_file

    assert not any(
        "net." in k for k in load_file(str(result.run_dir / "final" / "model.safetensors"))
    )


@pytest.mark.parametrize("fgm_first", [True, False])
def test_combines_with_fgm_in_either_order(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path, fgm_first: bool
) -> None:
    """Each objective finds the clean forward's tensors among the other's extra forwards."""
    target = write_classification(tmp_path / "target", n_train=20, seed=2)
    recipe = _recipe(tiny_bert, cls_data, target, epochs=1, max_steps=2)
    fgm = {"name": "fgm"}
    recipe["objectives"] = (
        [fgm, *recipe["objectives"]] if fgm_first else [*recipe["objectives"], fgm]
    )
    result = api.run(load_recipe(recipe), output_dir=tmp_path / "run")
    assert result.steps == 2
    assert "target" in json.loads((result.run_dir / "results.json").read_text())


def test_unlabelled_target_gives_no_target_metrics(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in cls_data["train"].read_text().splitlines()]
    unlabelled = tmp_path / "target.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in rows[:20]))
    recipe = recipe_dict(tiny_bert, cls_data, epochs=1, max_steps=2)
    recipe["objectives"] = [{"name": "dann", "target": str(unlabelled)}]
    result = api.run(load_recipe(recipe), output_dir=tmp_path / "run")
    assert "target" not in json.loads((result.run_dir / "results.json").read_text())


def test_interrupted_run_resumes_exactly(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    import yaml

    from tests.resume import assert_same_tensors, run_cli, train_until_killed

    target = write_classification(tmp_path / "target", n_train=40, seed=2)
    recipe = _recipe(tiny_bert, cls_data, target, epochs=1, checkpoint_every=4)
    del recipe["data"]["validation"]
    recipe["data"]["split"] = {"validation": 0.0}  # no eval: final = last step
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    straight = run_cli("train", str(path), "-o", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    train_until_killed(path, tmp_path / "resumed", checkpoints=2)
    checkpoint = tmp_path / "resumed" / "checkpoints" / "step-8"
    assert (checkpoint / "custom_checkpoint_0.pkl").is_file()  # the domain classifier
    resumed = run_cli("train", str(path), "-o", str(tmp_path / "resumed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "step 8" in resumed.stderr
    assert_same_tensors(
        tmp_path / "straight" / "final" / "model.safetensors",
        tmp_path / "resumed" / "final" / "model.safetensors",
    )
    ra = json.loads((tmp_path / "straight" / "results.json").read_text())
    rb = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert ra["target"]["test"] == rb["target"]["test"]
