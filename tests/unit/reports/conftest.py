"""Tiny finished run folders shared by the report and comparison tests (trained once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from domaintune import api
from domaintune.config import load_recipe
from tests.conftest import recipe_dict, write_classification, write_conll


def _train(model: Path, data: dict[str, Path], folder: Path, *overrides: str, **kw: str) -> Path:
    recipe = load_recipe(
        recipe_dict(model, data, eval_every=4, log_every=1, **kw),
        ["train.max_steps=8", *overrides],
    )
    return api.run(recipe, output_dir=folder).run_dir


@pytest.fixture(scope="session")
def cls_runs(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two classification runs that differ only in ``train.lr``."""
    root = tmp_path_factory.mktemp("report-cls")
    data = write_classification(root / "data")
    first = _train(tiny_bert, data, root / "lr-high", "train.lr=0.001")
    second = _train(tiny_bert, data, root / "lr-low", "train.lr=0.0002")
    return first, second


@pytest.fixture(scope="session")
def ner_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-ner")
    data = write_conll(root / "data")
    return _train(tiny_bert, data, root / "run", task="token_classification")
