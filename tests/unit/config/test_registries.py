"""Each registry lists exactly the names its config union (or Literal) accepts."""

from __future__ import annotations

import re
import typing
from typing import Any

import pytest

from domaintune.config import AugmentConfig, DataConfig, MethodConfig, ObjectiveConfig, TaskConfig
from domaintune.data import AUGMENTATIONS, READERS
from domaintune.methods import METHODS
from domaintune.objectives import OBJECTIVES
from domaintune.tasks import TASKS


def union_members(union: Any) -> list[type]:
    """Members of ``Annotated[A | B, Field(discriminator=...)]`` (or of a one-member Annotated)."""
    assert typing.get_origin(union) is typing.Annotated
    inner = typing.get_args(union)[0]
    return list(typing.get_args(inner) or (inner,))


def config_names(union: Any) -> list[str]:
    names = []
    for member in union_members(union):
        literal = typing.get_args(member.model_fields["name"].annotation)
        assert len(literal) == 1, f"{member.__name__}.name must be one Literal value"
        names.append(literal[0])
    return names


CASES = [
    pytest.param(TASKS, TaskConfig, id="tasks"),
    pytest.param(METHODS, MethodConfig, id="methods"),
    pytest.param(OBJECTIVES, ObjectiveConfig, id="objectives"),
    pytest.param(AUGMENTATIONS, AugmentConfig, id="augmentations"),
]


@pytest.mark.parametrize(("registry", "union"), CASES)
def test_registry_keys_equal_the_config_union_names(registry: dict[str, Any], union: Any) -> None:
    names = config_names(union)
    assert len(names) == len(set(names)), "two configs share a name"
    assert set(registry) == set(names)


@pytest.mark.parametrize(("registry", "union"), CASES)
def test_registry_keys_are_snake_case(registry: dict[str, Any], union: Any) -> None:
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", key) for key in registry)


@pytest.mark.parametrize(("registry", "union"), CASES)
def test_config_classes_follow_the_naming_convention(registry: dict[str, Any], union: Any) -> None:
    for member in union_members(union):
        assert member.__name__.endswith("Config")
        assert member.model_config.get("extra") == "forbid"


def test_readers_equal_the_data_format_literal_minus_auto() -> None:
    formats = typing.get_args(DataConfig.model_fields["format"].annotation)
    assert "auto" in formats
    assert set(READERS) == set(formats) - {"auto"}
    assert all(callable(reader) for reader in READERS.values())


def test_augmentations_are_callable() -> None:
    assert all(callable(augment) for augment in AUGMENTATIONS.values())


def test_method_modules_have_apply() -> None:
    for name, module in METHODS.items():
        assert callable(getattr(module, "apply", None)), name


def test_objectives_have_loss() -> None:
    for name, objective in OBJECTIVES.items():
        assert callable(getattr(objective, "loss", None)), name


def test_every_method_has_a_default_learning_rate() -> None:
    from domaintune.config.methods import DEFAULT_LR

    assert set(DEFAULT_LR) == set(METHODS)


def test_method_defaults_follow_the_task_unless_the_recipe_sets_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from domaintune.config import methods
    from domaintune.config.recipe import Recipe

    monkeypatch.setitem(methods.DEFAULT_LR_BY_TASK, ("lora", "token_classification"), 7e-4)
    monkeypatch.setitem(methods.DEFAULT_EPOCHS_BY_TASK, ("lora", "token_classification"), 5)

    def recipe(task: str, **train: float) -> Recipe:
        return Recipe.model_validate(
            {
                "task": {"name": task},
                "data": {"train": "x"},
                "method": {"name": "lora"},
                "train": train,
            }
        )

    ner = recipe("token_classification")
    assert (ner.train.lr, ner.train.epochs) == (7e-4, 5)
    cls = recipe("classification")
    assert (cls.train.lr, cls.train.epochs) == (methods.DEFAULT_LR["lora"], 3)
    mine = recipe("token_classification", lr=1e-5, epochs=2)
    assert (mine.train.lr, mine.train.epochs) == (1e-5, 2)
