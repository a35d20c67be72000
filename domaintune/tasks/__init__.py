"""Tasks: everything that differs between classification, tagging, LM and generation."""

from typing import Any

from domaintune.tasks.classification import ClassificationTask
from domaintune.tasks.generation import GenerationTask
from domaintune.tasks.language_modeling import LanguageModelingTask
from domaintune.tasks.multitask import MultiTask
from domaintune.tasks.protocol import Task
from domaintune.tasks.token_classification import TokenClassificationTask

TASKS: dict[str, Any] = {
    "classification": ClassificationTask,
    "token_classification": TokenClassificationTask,
    "language_modeling": LanguageModelingTask,
    "generation": GenerationTask,
    "multitask": MultiTask,
}


def build_task(cfg: Any, state: dict[str, Any] | None = None) -> Task:
    """Create the task named by ``cfg.name`` from its config section."""
    task: Task = TASKS[cfg.name](cfg, state)
    return task


__all__ = ["TASKS", "Task", "build_task"]
