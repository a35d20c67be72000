"""Continual learning end to end: a tagger for one tag set, then another, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file

from domaintune.config import DistillConfig
from domaintune.objectives import OBJECTIVES
from tests.conftest import recipe_dict, write_conll
from tests.unit.objectives.continual_data import write_org_loc

OLD = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("continual")
    return {"orgloc": write_org_loc(root / "orgloc"), "disease": write_conll(root / "disease", 48)}


@pytest.fixture(scope="module")
def first(
    tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, data: dict[str, dict[str, Path]]
) -> Path:
    """A finished ORG/LOC tagger: the start of every second stage below."""
    from domaintune.api import run

    recipe = recipe_dict(tiny_bert, data["orgloc"], "token_classification", epochs=1)
    out = tmp_path_factory.mktemp("first") / "run"
    run(_recipe(recipe), output_dir=out)
    return out


def _recipe(data: dict[str, object]) -> object:
    from domaintune.config.recipe import Recipe

    return Recipe.model_validate(data)


def _second(
    tiny_bert: Path, data: dict[str, dict[str, Path]], first: Path, **extra: object
) -> dict[str, object]:
    recipe = recipe_dict(tiny_bert, data["disease"], "token_classification", epochs=1)
    recipe["model"] = {"init_from": str(first)}
    recipe.update(extra)
    return recipe


@pytest.mark.parametrize("method", ["full", "lora"])
def test_ewc_distill_l2sp_replay_run_from_a_recipe(
    method: str, tmp_path: Path, tiny_bert: Path, data: dict[str, dict[str, Path]], first: Path
) -> None:
    from domaintune.api import predict, run

    objectives = [
        {"name": "ewc", "weight": 10.0, "data": [str(data["orgloc"]["train"])], "samples": 16},
        {"name": "distill", "weight": 0.5},
        {"name": "l2sp", "weight": 0.01},
    ]
    recipe = _second(tiny_bert, data, first, method={"name": method}, objectives=objectives)
    replay = {"files": [str(data["orgloc"]["train"])], "fraction": 0.25, "seed": 1}
    recipe["data"]["replay"] = replay  # type: ignore[index]
    result = run(_recipe(recipe), output_dir=tmp_path / "run")
    assert result.steps > 0
    mixed = json.loads((tmp_path / "run" / "results.json").read_text())["data"]["replay"]
    assert mixed["examples"] == 12  # a quarter of the 48 earlier training sentences
    saved = json.loads((tmp_path / "run" / "final" / "domaintune.json").read_text())
    # one head over both tag sets: the old tags first, in their order
    assert saved["state"]["labels"] == [*OLD, "B-Disease", "I-Disease"]
    assert saved["state"]["label_sets"] == [["LOC", "ORG"], ["Disease"]]
    fisher = load_file(str(tmp_path / "run" / "fisher.safetensors"))
    assert fisher and all(torch.isfinite(f).all() for f in fisher.values())
    if method == "full":
        assert fisher["classifier.weight"].shape == (7, 32)
        assert "bert.embeddings.word_embeddings.weight" in fisher
    else:
        assert any("lora_B" in name for name in fisher)
    rows = predict(tmp_path / "run", ["the company has cancer"])
    assert {e["type"] for e in rows[0]["entities"]} <= {"ORG", "LOC", "Disease"}


def test_distill_is_zero_at_the_start_and_pulls_the_old_tags_only(
    tiny_bert_no_dropout: Path,
) -> None:
    from transformers import AutoModelForTokenClassification

    from domaintune.config import TokenClassificationTaskConfig
    from domaintune.tasks import build_task

    model = AutoModelForTokenClassification.from_pretrained(str(tiny_bert_no_dropout), num_labels=7)
    task = build_task(TokenClassificationTaskConfig(name="token_classification"))
    ctx = SimpleNamespace(model=model, task=task, extra={"grown": {"classifier.weight": 5}})
    objective = OBJECTIVES["distill"](DistillConfig(name="distill", weight=2.0, temperature=3.0))
    objective.setup(ctx)  # type: ignore[arg-type]
    ids = torch.tensor([[2, 7, 9, 12, 3], [2, 8, 3, 0, 0]])
    mask = (ids != 0).long()
    labels = torch.tensor([[-100, 0, 1, 0, -100], [-100, 3, -100, -100, -100]])
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    assert objective.loss(model, batch, model(input_ids=ids, attention_mask=mask)).item() < 1e-6
    with torch.no_grad():
        model.classifier.weight[5:].add_(5.0)  # the new tags: not the teacher's business
    loss = objective.loss(model, batch, model(input_ids=ids, attention_mask=mask))
    assert loss.item() < 1e-6
    with torch.no_grad():
        dense = model.bert.encoder.layer[0].output.dense.weight
        dense.add_(torch.randn(dense.shape, generator=torch.Generator().manual_seed(0)))
    loss = objective.loss(model, batch, model(input_ids=ids, attention_mask=mask))
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    # by hand: T^2 * weight * mean over the 4 tagged words of KL(teacher || student), old tags
    student = model(input_ids=ids, attention_mask=mask).logits[labels != -100][:, :5] / 3.0
    teacher = objective.teacher(input_ids=ids, attention_mask=mask).logits[labels != -100][:, :5]
    p = torch.softmax(teacher / 3.0, -1)
    expected = 2.0 * 9.0 * (p * (p.log() - torch.log_softmax(student, -1))).sum(-1).mean()
    assert abs(loss.item() - expected.item()) < 1e-5
    loss.backward()
    assert model.bert.encoder.layer[0].output.dense.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad[5:].abs().sum() == 0
    assert all(p.grad is None for p in objective.teacher.parameters())


def test_pipeline_reports_the_forgetting_matrix(
    tmp_path: Path, tiny_bert: Path, data: dict[str, dict[str, Path]]
) -> None:
    from domaintune.api import evaluate, run_pipeline

    one = recipe_dict(tiny_bert, data["orgloc"], "token_classification", epochs=1)
    two = _second(tiny_bert, data, Path("unused"), objectives=[{"name": "distill"}])
    two["model"] = {"init_from": "stage:orgloc"}
    two["data"]["replay"] = {"files": ["stage:orgloc"], "fraction": 0.25, "seed": 1}  # type: ignore[index]
    path = tmp_path / "chain.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "evaluate_earlier": True,
                "stages": [{"name": "orgloc", "recipe": one}, {"name": "disease", "recipe": two}],
            }
        )
    )
    run_pipeline(path, output_dir=tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    forgetting = summary["forgetting"]
    assert forgetting["tasks"] == ["orgloc", "disease"]
    matrix = forgetting["matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix) and matrix[0][1] is None
    first = json.loads((tmp_path / "out" / "orgloc" / "results.json").read_text())
    second = json.loads((tmp_path / "out" / "disease" / "results.json").read_text())
    assert matrix[0][0] == round(first["test"]["entity_f1"], 6)
    assert matrix[1][1] == round(second["test"]["entity_f1"], 6)
    # row 1, column 0: the stage-2 model on the ORG/LOC test split, as `domaintune evaluate`
    again = evaluate(tmp_path / "out" / "disease", data["orgloc"]["test"])
    assert matrix[1][0] == round(again["entity_f1"], 6)
    assert forgetting["average_forgetting"] == pytest.approx(matrix[0][0] - matrix[1][0], abs=1e-5)
    replay = second["data"]["replay"]
    assert replay["examples"] == 12 and replay["files"] == {str(data["orgloc"]["train"]): 12}
    # resuming a finished pipeline keeps the matrix (cached per stage)
    run_pipeline(path, output_dir=tmp_path / "out", resume=True)
    assert json.loads((tmp_path / "out" / "pipeline.json").read_text())["forgetting"] == forgetting
