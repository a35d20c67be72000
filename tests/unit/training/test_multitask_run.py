"""Multi-task end to end on the tiny model: full fine-tuning and LoRA, per-task results, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from domaintune import api
from domaintune.config import load_recipe
from domaintune.errors import RunError
from domaintune.methods import METHODS
from domaintune.models.load import load_model, resolve_source
from domaintune.tasks import build_task
from tests.conftest import write_classification, write_conll


def multitask_recipe(model: Path, root: Path, method: dict[str, Any], **train: Any) -> dict:
    """A classification + NER multi-task recipe on tiny generated data."""
    cls, ner = write_classification(root / "cls", 16), write_conll(root / "ner", 16)

    def data(paths: dict[str, Path], fmt: str) -> dict[str, Any]:
        return {
            "format": fmt,
            "train": str(paths["train"]),
            "validation": str(paths["dev"]),
            "test": str(paths["test"]),
            "max_length": 48,
            "cache_dir": "none",
        }

    return {
        "task": {
            "name": "multitask",
            "sampling": "temperature",
            "temperature": 2.0,
            "tasks": [
                {
                    "name": "cls",
                    "task": {"name": "classification"},
                    "data": data(cls, "jsonl"),
                    "metric": "accuracy",
                },
                {
                    "name": "ner",
                    "task": {"name": "token_classification", "head": "crf"},
                    "data": data(ner, "conll"),
                    "weight": 2.0,
                },
            ],
        },
        "model": {"name": str(model)},
        "method": method,
        "train": {
            "epochs": 1,
            "lr": 1e-3,
            "batch_size": 8,
            "seed": 1,
            "precision": "fp32",
            "eval_every": 3,
            **train,
        },
    }


@pytest.mark.parametrize(
    "method",
    [{"name": "full"}, {"name": "lora", "r": 4, "alpha": 8}],
    ids=["full", "lora"],
)
def test_multitask_run_reports_and_exports_every_task(
    tiny_bert: Path, tmp_path: Path, method: dict[str, Any]
) -> None:
    recipe = load_recipe(multitask_recipe(tiny_bert, tmp_path, method))
    run = api.run(recipe, output_dir=tmp_path / "run")
    results = json.loads((run.run_dir / "results.json").read_text())
    assert results["metric"] == "tasks_mean"
    test = results["test"]
    assert {"cls/accuracy", "ner/entity_f1", "tasks_mean"} <= set(test)
    assert test["tasks_mean"] == pytest.approx((test["cls/accuracy"] + test["ner/entity_f1"]) / 2)
    evaluations = results["evaluations"]
    assert evaluations and all({"cls/accuracy", "ner/entity_f1"} <= set(e) for e in evaluations)
    assert (run.run_dir / "final" / "heads.safetensors").is_file()
    with pytest.raises(RunError, match="tasks/<name>"):
        api.evaluate(run.run_dir, tmp_path / "cls" / "test.jsonl")
    # every task's folder is an ordinary run: evaluate reproduces the run's own test metrics
    assert set(results["tasks"]) == {"cls", "ner"}
    cls = api.evaluate(results["tasks"]["cls"], tmp_path / "cls" / "test.jsonl")
    ner = api.evaluate(results["tasks"]["ner"], tmp_path / "ner" / "test.conll")
    assert cls["accuracy"] == pytest.approx(test["cls/accuracy"])
    assert ner["entity_f1"] == pytest.approx(test["ner/entity_f1"])
    trainable = results["train"]["trainable_parameters"]
    if method["name"] == "lora":
        assert trainable < results["train"]["total_parameters"] / 2


def test_lora_keeps_every_head_and_crf_trainable(tiny_bert: Path, tmp_path: Path) -> None:
    recipe = load_recipe(multitask_recipe(tiny_bert, tmp_path, {"name": "lora", "r": 4}))
    task = build_task(recipe.task)
    task.fit_labels(task.load_splits())  # type: ignore[attr-defined]
    encoder = load_model(resolve_source(recipe.model), task.auto_class())
    adapted = METHODS["lora"].apply(encoder, recipe.method)
    module = task.wrap(adapted)
    heads = list(module.heads.parameters()) + list(module.crfs.parameters())
    assert len(list(module.crfs.parameters())) == 3  # start, end, transitions of ner's CRF
    assert heads and all(p.requires_grad for p in heads)
    frozen = [n for n, p in module.encoder.named_parameters() if not p.requires_grad]
    assert any("query.base_layer.weight" in n for n in frozen)  # the encoder is LoRA's
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert all(id(p) in trainable for p in heads)
    assert isinstance(module(**_probe(module)).logits, torch.Tensor)


def _probe(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 6, 7, 3]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "task_id": torch.tensor([0])}
