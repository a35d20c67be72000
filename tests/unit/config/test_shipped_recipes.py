"""Every shipped recipe validates, and the built-in data it names exists."""

from __future__ import annotations

from pathlib import Path

import pytest

import domaintune
from domaintune.config import Recipe, load_recipe
from domaintune.config.pipeline import is_pipeline, load_pipeline
from domaintune.data.readers import BUILTIN_PREFIX, resolve_path

RECIPE_DIR = Path(domaintune.__file__).parent / "recipes"
RECIPES = sorted(RECIPE_DIR.glob("*.yaml"))


def test_at_least_one_recipe_is_shipped() -> None:
    assert RECIPES, f"no recipes in {RECIPE_DIR}"


def _recipes(path: Path) -> list[Recipe]:
    """The recipe, or every stage recipe of a pipeline."""
    return load_pipeline(path)[1] if is_pipeline(path) else [load_recipe(path)]


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipe_validates(path: Path) -> None:
    for recipe in _recipes(path):
        assert recipe.task.name
        assert recipe.data.train or recipe.data.dataset


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipe_builtin_data_exists(path: Path) -> None:
    for recipe in _recipes(path):
        sections = [recipe.data, *(t.data for t in getattr(recipe.task, "tasks", []))]
        for data in sections:  # a multi-task recipe has a data section per task
            graph = data.knowledge.file if data.knowledge is not None else None
            for spec in (data.train, data.validation, data.test, data.reference_text, graph):
                if spec is not None and spec.startswith(BUILTIN_PREFIX):
                    assert resolve_path(spec).is_file(), spec
