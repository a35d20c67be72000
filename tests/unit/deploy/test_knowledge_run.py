"""Knowledge injection end to end: the run carries its graph and predicts with the same facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domaintune import api
from domaintune.config import load_recipe
from domaintune.config.knowledge import KnowledgeConfig
from domaintune.data.knowledge import injector_for, knowledge_identity
from domaintune.data.pipeline import clean_example
from domaintune.data.readers import read_split
from domaintune.deploy.load import from_run, load_run
from domaintune.deploy.predict import predict_outputs
from domaintune.errors import RunError
from tests.conftest import recipe_dict, write_conll

GRAPH = "head\trelation\ttail\ncancer\tis_a\tdisease\ndiabetes\tis_a\tdisease\nfever\tis_a\tsign\n"


@pytest.fixture(scope="module")
def kg_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kg-run")
    data = write_conll(root / "data")
    (root / "kg.tsv").write_text(GRAPH, encoding="utf-8")
    recipe = recipe_dict(tiny_bert, data, "token_classification")
    recipe["data"]["knowledge"] = {"file": str(root / "kg.tsv")}  # type: ignore[index]
    return api.run(load_recipe(recipe, ["train.max_steps=4"]), output_dir=root / "run").run_dir


def test_the_run_carries_its_graph_and_reports_linking(kg_run: Path) -> None:
    saved = json.loads((kg_run / "final" / "domaintune.json").read_text())
    entry = saved["knowledge"]
    assert (kg_run / "final" / entry["file"]).read_text() == GRAPH
    results = json.loads((kg_run / "results.json").read_text())
    knowledge = results["data"]["knowledge"]
    assert knowledge["sha256"] == entry["sha256"] and knowledge["triples"] == 3
    assert knowledge["splits"]["test"]["linked_examples"] > 0


def test_prediction_injects_exactly_what_training_did(kg_run: Path) -> None:
    loaded = load_run(kg_run)
    assert loaded.knowledge is not None
    test_file = kg_run.parent / "data" / "test.conll"
    examples = read_split(str(test_file), loaded.data, "tokens")
    _, predicted = predict_outputs(from_run(loaded, "fp32"), examples)
    # What training encoded: the recipe's own graph file, attached in the data stage.
    training = read_split(str(test_file), loaded.data, "tokens")
    for example in training:
        clean_example(example)
    assert loaded.data.knowledge is not None
    injector_for(loaded.data.knowledge).attach(training, "tokens")
    expected = loaded.task.encode(training, loaded.tokenizer, loaded.data.max_length)
    assert [a.tolist() for a in predicted.features["input_ids"]] == [
        a.tolist() for a in expected.features["input_ids"]
    ]
    assert any(
        len(a) > len(e["tokens"]) + 3
        for a, e in zip(expected.features["input_ids"], training, strict=True)
    )
    results = json.loads((kg_run / "results.json").read_text())
    assert api.evaluate(kg_run, test_file)["entity_f1"] == pytest.approx(
        results["test"]["entity_f1"], abs=1e-9
    )


def test_an_export_carries_the_graph_and_predicts_alike(kg_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "st"
    api.export(kg_run, "safetensors", out)
    assert (out / "knowledge" / "kg.tsv").is_file()
    texts = ["the patient has cancer", "a mild fever was reported"]
    assert api.predict(out, texts) == api.predict(kg_run, texts)


def test_a_changed_graph_copy_is_refused(kg_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(kg_run, copy)
    (copy / "final" / "knowledge" / "kg.tsv").write_text(GRAPH + "tumor\tis_a\tdisease\n")
    with pytest.raises(RunError, match="changed since training"):
        load_run(copy)


def test_the_cache_key_follows_the_graph_content(tmp_path: Path) -> None:
    path = tmp_path / "kg.tsv"
    path.write_text(GRAPH, encoding="utf-8")
    cfg = KnowledgeConfig(file=str(path))
    before = knowledge_identity(cfg)
    path.write_text(GRAPH + "tumor\tis_a\tdisease\n", encoding="utf-8")
    assert knowledge_identity(cfg) != before
    assert (
        knowledge_identity(cfg.model_copy(update={"max_fact_tokens": 8}))["config"]
        != (knowledge_identity(cfg)["config"])
    )


def test_knowledge_masking_dapt_runs(tiny_bert: Path, tmp_path: Path) -> None:
    (tmp_path / "kg.tsv").write_text(GRAPH, encoding="utf-8")
    text = tmp_path / "domain.txt"
    text.write_text("the patient has cancer and a fever\nmild diabetes was reported\n" * 20)
    recipe = {
        "task": {"name": "language_modeling", "objective": "mlm", "knowledge_masking": True},
        "model": {"name": str(tiny_bert)},
        "data": {
            "train": str(text),
            "max_length": 16,
            "cache_dir": "none",
            "split": {"validation": 0.0, "test": 0.1},
            "clean": {"dedupe": False},
            "knowledge": {"file": str(tmp_path / "kg.tsv")},
        },
        "train": {"max_steps": 2, "batch_size": 4, "lr": 1e-3, "precision": "fp32"},
    }
    run = api.run(load_recipe(recipe), output_dir=tmp_path / "run").run_dir
    results = json.loads((run / "results.json").read_text())
    assert results["data"]["knowledge"]["splits"]["train"]["mentions"] >= 36
    assert results["test"]["targets"] > 0
