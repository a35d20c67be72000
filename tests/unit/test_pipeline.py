"""Pipelines: DAPT/TAPT then fine-tuning in one command, and the chaining round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from domaintune.config.pipeline import load_pipeline
from domaintune.errors import ConfigError


def _pipeline(tmp_path: Path, model: Path, ner: dict[str, Path], **lm_model: object) -> Path:
    lm = {
        "task": {"name": "language_modeling"},
        "model": {"name": str(model), **lm_model},
        "data": {
            "train": str(ner["train"]),  # TAPT: the task's own training text, tags ignored
            "test": str(ner["test"]),
            "reference_text": str(ner["dev"]),
            "max_length": 32,
            "cache_dir": "none",
            "split": {"validation": 0.0},
        },
        "train": {"epochs": 1, "lr": 1e-3, "batch_size": 8, "precision": "fp32"},
    }
    tagger = {
        "task": {"name": "token_classification"},
        "model": {"name": str(model)},
        "data": {
            "format": "conll",
            "train": str(ner["train"]),
            "validation": str(ner["dev"]),
            "test": str(ner["test"]),
            "max_length": 64,
            "cache_dir": "none",
        },
        "train": {"epochs": 1, "lr": 1e-3, "batch_size": 8, "precision": "fp32"},
    }
    (tmp_path / "ner.yaml").write_text(yaml.safe_dump(tagger))
    path = tmp_path / "chain.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "stages": [
                    {"name": "tapt", "recipe": lm},
                    {
                        "name": "ner",
                        "recipe": "ner.yaml",
                        "overrides": ["model.init_from=stage:tapt"],
                    },
                ]
            }
        )
    )
    return path


def test_chain_runs_tapt_then_ner_from_the_adapted_encoder(
    tmp_path: Path, tiny_bert: Path, ner_data: dict[str, Path]
) -> None:
    from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification, AutoTokenizer

    from domaintune.api import predict, run_pipeline

    path = _pipeline(tmp_path, tiny_bert, ner_data)
    results = run_pipeline(path, output_dir=tmp_path / "out")
    assert set(results) == {"tapt", "ner"}
    summary = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert summary["stages"]["ner"]["model"] == str(tmp_path / "out" / "tapt")
    assert summary["stages"]["tapt"]["forgetting"]["general"]["before"] > 0
    # the NER run started from the TAPT weights, not from the original model
    lm = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "out" / "tapt" / "final"))
    start = AutoModelForTokenClassification.from_pretrained(
        str(tmp_path / "out" / "tapt" / "final"), num_labels=3
    )
    original = AutoModelForMaskedLM.from_pretrained(str(tiny_bert))
    for name, param in lm.bert.named_parameters():
        assert torch.equal(param, start.bert.get_parameter(name))
    moved = lm.bert.embeddings.word_embeddings.weight
    assert not torch.equal(moved, original.bert.embeddings.word_embeddings.weight)
    rows = predict(tmp_path / "out" / "ner", ["the patient has cancer"])
    assert rows and "entities" in rows[0]
    tok_lm = AutoTokenizer.from_pretrained(str(tmp_path / "out" / "tapt" / "final"))
    tok_ner = AutoTokenizer.from_pretrained(str(tmp_path / "out" / "ner" / "final"))
    assert tok_lm.get_vocab() == tok_ner.get_vocab()


def test_resume_keeps_finished_stages(
    tmp_path: Path, tiny_bert: Path, ner_data: dict[str, Path]
) -> None:
    from domaintune.api import run_pipeline

    path = _pipeline(tmp_path, tiny_bert, ner_data)
    run_pipeline(path, output_dir=tmp_path / "out")
    stamp = (tmp_path / "out" / "tapt" / "results.json").stat().st_mtime_ns
    again = run_pipeline(path, output_dir=tmp_path / "out", resume=True)
    assert again == {}  # both stages had finished: nothing re-ran
    assert (tmp_path / "out" / "tapt" / "results.json").stat().st_mtime_ns == stamp


def test_unknown_stages_and_bad_fields_are_reported_together(tmp_path: Path) -> None:
    def stage(name: str, **train: object) -> dict[str, object]:
        return {
            "name": name,
            "recipe": {
                "task": {"name": "classification"},
                "model": {"init_from": "stage:dapt"},
                "data": {"train": "x.jsonl"},
                "train": train,
            },
        }

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"stages": [stage("ft", lr=-1), stage("ft2")]}))
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "stage ft)" in lines[0] and "train.lr" in lines[0]
    assert "stage ft2)" in lines[1] and "'stage:dapt': no earlier stage" in lines[1]


def test_stage_override_applies_to_that_stage_only(
    tmp_path: Path, tiny_bert: Path, ner_data: dict[str, Path]
) -> None:
    path = _pipeline(tmp_path, tiny_bert, ner_data)
    _, recipes = load_pipeline(path, ["train.seed=7", "ner.train.lr=0.5"])
    assert [r.train.seed for r in recipes] == [7, 7]
    assert [r.train.lr for r in recipes] == [1e-3, 0.5]
    assert recipes[1].model.init_from == "stage:tapt"


def test_pipeline_refuses_an_existing_folder(
    tmp_path: Path, tiny_bert: Path, ner_data: dict[str, Path]
) -> None:
    from domaintune.api import run_pipeline
    from domaintune.errors import RunError

    path = _pipeline(tmp_path, tiny_bert, ner_data)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="--resume"):
        run_pipeline(path, output_dir=tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_expanded_vocabulary_survives_the_chain(tmp_path: Path, tiny_bert: Path) -> None:
    """TAPT with vocabulary expansion → classification: tokenizer, embeddings and head agree."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from domaintune.api import run_pipeline

    rows = []  # duplicates are dropped from train: two distinct texts, each character once
    for i in range(40):
        good = i % 2 == 0
        text = ("酒店 很 好 干净 " if good else "房间 太 差 吵闹 ") + "the patient"
        rows.append({"text": text, "label": "pos" if good else "neg"})
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = {s: str(tmp_path / f"{s}.jsonl") for s in ("train", "dev", "test")}
    train = {"epochs": 1, "lr": 1e-3, "batch_size": 8, "precision": "fp32"}
    chain = {
        "stages": [
            {
                "name": "tapt",
                "recipe": {
                    "task": {"name": "language_modeling", "whole_word_masking": True},
                    "model": {"name": str(tiny_bert), "expand_vocab": {"min_count": 1}},
                    "data": {
                        "train": files["train"],
                        "test": files["test"],
                        "max_length": 16,
                        "cache_dir": "none",
                        "split": {"validation": 0.0},
                    },
                    "train": train,
                },
            },
            {
                "name": "cls",
                "recipe": {
                    "task": {"name": "classification"},
                    "model": {"init_from": "stage:tapt"},
                    "data": {
                        "train": files["train"],
                        "validation": files["dev"],
                        "test": files["test"],
                        "max_length": 16,
                        "cache_dir": "none",
                    },
                    "train": train,
                },
            },
        ]
    }
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(chain, allow_unicode=True))
    run_pipeline(path, output_dir=tmp_path / "out")
    tapt = json.loads((tmp_path / "out" / "tapt" / "results.json").read_text())
    vocab = tapt["vocabulary"]
    assert vocab["added"] >= 8  # 酒 店 很 好 干 净 房 间 太 差 吵 闹 are not in the tiny vocabulary
    assert vocab["before"]["unk_rate"] > 0.3 and vocab["after"]["unk_rate"] == 0.0
    # every run reports the domain shift of its training text, measured before expansion
    assert tapt["shift"]["tokenizer"]["domain"]["unk_rate"] == vocab["before"]["unk_rate"]
    assert tapt["shift"]["verdict"]["level"] == "high"
    cls_results = json.loads((tmp_path / "out" / "cls" / "results.json").read_text())
    assert cls_results["shift"]["task_data"]["size"] == 2  # after dedupe
    assert cls_results["shift"]["task_data"]["labels"]
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out" / "cls" / "final"))
    ids = tok("酒店 很 好", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and max(ids) >= 92  # new ids, past the old vocabulary
    model = AutoModelForSequenceClassification.from_pretrained(
        str(tmp_path / "out" / "cls" / "final")
    )
    # every id has a row (the tiny vocabulary repeats 'a', so its length is one short of its ids)
    assert model.get_input_embeddings().weight.shape[0] == max(tok.get_vocab().values()) + 1
    assert model.config.id2label == {0: "neg", 1: "pos"}
