"""Tiny trained runs (classification, NER with a CRF head) shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from domaintune import api
from domaintune.config import load_recipe
from tests.conftest import recipe_dict, write_classification, write_conll

# Texts every server test sends.
TEXTS = [
    "the patient has good result",
    "bad market and weak profit",
    "a severe fever was reported",
    "the company profit rose",
]


@pytest.fixture(scope="module")
def cls_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classification run trained for a few steps (LoRA: a method that merges)."""
    root = tmp_path_factory.mktemp("cls-run")
    data = write_classification(root / "data")
    recipe = {**recipe_dict(tiny_bert, data), "method": {"name": "lora", "r": 4}}
    return api.run(load_recipe(recipe, ["train.max_steps=8"]), output_dir=root / "run").run_dir


@pytest.fixture(scope="module")
def ner_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A token-classification run with a CRF head, trained for a few steps."""
    root = tmp_path_factory.mktemp("ner-run")
    data = write_conll(root / "data")
    recipe = recipe_dict(tiny_bert, data, "token_classification")
    recipe["task"] = {"name": "token_classification", "head": "crf"}
    return api.run(load_recipe(recipe, ["train.max_steps=8"]), output_dir=root / "run").run_dir
