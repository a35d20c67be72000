"""The multi-task recipe section: one-line errors at load time, list-index overrides, round trip."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from domaintune.config import MultiTaskConfig, dump_recipe, load_recipe
from domaintune.errors import ConfigError


def recipe(**task: Any) -> dict[str, Any]:
    return {
        "task": {
            "name": "multitask",
            "tasks": [
                {"name": "cls", "task": {"name": "classification"}, "data": {"train": "a.jsonl"}},
                {
                    "name": "ner",
                    "task": {"name": "token_classification"},
                    "data": {"train": "b.conll"},
                },
            ],
            **task,
        }
    }


def error(data: dict[str, Any], overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_recipe(data, overrides)
    return str(caught.value)


def test_the_recipe_data_is_the_first_tasks_and_round_trips() -> None:
    loaded = load_recipe(recipe())
    assert isinstance(loaded.task, MultiTaskConfig)
    assert loaded.data == loaded.task.tasks[0].data
    again = load_recipe(yaml.safe_load(dump_recipe(loaded)))
    assert again == loaded


@pytest.mark.parametrize(
    ("sampling", "temperature", "exponent"),
    [("proportional", None, 1.0), ("uniform", None, 0.0), ("temperature", 4.0, 0.25)],
)
def test_sampling_exponent(sampling: str, temperature: float | None, exponent: float) -> None:
    extra = {"temperature": temperature} if temperature else {}
    task = load_recipe(recipe(sampling=sampling, **extra)).task
    assert task.exponent == exponent  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["task.tasks.1.task.name=language_modeling"], "task.tasks.1.task.name: "),
        (["task.tasks.1.name=cls"], "task name 'cls' is used twice"),
        (["task.tasks.1.name=NER"], "lower case"),
        (["task.tasks.1.data={format: conll}"], "task.tasks.1.data: "),
        (["task.temperature=3"], "sampling: temperature only"),
        (["task.tasks=[]"], "needs two tasks at least"),
        (["data.train=other.jsonl"], "remove the top-level data section"),
        (
            ["task.tasks.1.task={name: token_classification, head: crf, crf_lr_multiplier: 5}"],
            "crf_lr_multiplier is not applied",
        ),
        (["task.tasks.2.weight=2"], "not an item of a list of 2"),
    ],
)
def test_errors_are_one_line_naming_the_field(overrides: list[str], expected: str) -> None:
    message = error(recipe(), overrides)
    assert len(message.splitlines()) == 1, message
    assert expected in message
    assert message.count("→") == 1


def test_overrides_reach_into_the_task_list() -> None:
    loaded = load_recipe(recipe(), ["task.tasks.1.weight=2.5", "task.tasks.0.data.max_length=64"])
    tasks = loaded.task.tasks  # type: ignore[union-attr]
    assert tasks[1].weight == 2.5 and tasks[0].data.max_length == 64
    assert loaded.data.max_length == 64
