"""Recipe section of multi-task learning: one shared encoder, one head per task (no torch here).

``TaskConfig`` (the union every recipe's ``task`` is validated against) and ``SingleTaskConfig``
(the tasks on one dataset) live here because ``TaskConfig`` includes ``MultiTaskConfig``, whose
sub-tasks are the single-dataset task configs of ``sections.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from domaintune.config.generation import GenerationTaskConfig
from domaintune.config.sections import (
    ClassificationTaskConfig,
    DataConfig,
    LanguageModelingTaskConfig,
    Section,
    TokenClassificationTaskConfig,
)

SubTaskKind = Annotated[
    ClassificationTaskConfig | TokenClassificationTaskConfig, Field(discriminator="name")
]

DEFAULT_TEMPERATURE = 2.0
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class SubTaskConfig(Section):
    """One task of a multi-task run: its own data, head, loss weight and main metric."""

    name: str = Field(
        min_length=1,
        max_length=40,
        description="Short task name (lower case, digits, '_' or '-'); prefixes its metrics "
        "(e.g. nicta/accuracy) and names its exported folder tasks/<name>.",
    )
    task: SubTaskKind = Field(
        description="The task: classification or token_classification (each gets its own head)."
    )
    data: DataConfig = Field(description="This task's data files and reading options.")
    weight: float = Field(
        1.0, gt=0, le=1000, description="Multiplier of this task's loss in every step."
    )
    metric: str | None = Field(
        None,
        description="This task's main metric (higher is better), averaged into the selection "
        "metric; null: the task's default (f1_macro / entity_f1).",
    )

    @model_validator(mode="after")
    def _check(self) -> SubTaskConfig:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"task name {self.name!r} must be lower case letters, digits, '_' or '-' "
                "(starting with a letter)"
            )
        if getattr(self.task, "crf_lr_multiplier", 1.0) != 1.0:
            raise ValueError(
                "crf_lr_multiplier is not applied in a multi-task run (encoder, heads and CRFs "
                "share train.lr) → remove it"
            )
        if self.data.augment:
            raise ValueError(
                "data.augment is not applied in a multi-task run → remove it (augment each "
                "task's training file in a single-task run)"
            )
        return self


class MultiTaskConfig(Section):
    """Multi-task learning: one shared encoder, one head per task, batches drawn task by task.

    Every batch holds one task's examples (length-grouped inside that task). The share of
    batches of task i is ``p_i ∝ n_i^(1/T)`` (n_i its training examples): ``proportional`` is
    T = 1, ``uniform`` is T → ∞, ``temperature`` uses ``temperature``.
    """

    name: Literal["multitask"] = Field(description="Task name.")
    tasks: list[SubTaskConfig] = Field(
        default_factory=list, description="The tasks (two at least), each with its own data."
    )
    sampling: Literal["proportional", "temperature", "uniform"] = Field(
        "proportional",
        description="Share of batches per task: proportional to its size (T=1), "
        "temperature (p_i ∝ n_i^(1/T)) or uniform (T→∞).",
    )
    temperature: float = Field(
        DEFAULT_TEMPERATURE,
        gt=0,
        le=1000,
        description="sampling: temperature only: T in p_i ∝ n_i^(1/T).",
    )

    @model_validator(mode="after")
    def _check(self) -> MultiTaskConfig:
        if len(self.tasks) < 2:
            raise ValueError(
                "a multi-task recipe needs two tasks at least → list them under task.tasks"
            )
        names = [t.name for t in self.tasks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"task name {twice[0]!r} is used twice → give each task its own name")
        # a resolved recipe lists the default temperature whatever the sampling
        if self.temperature != DEFAULT_TEMPERATURE and self.sampling != "temperature":
            raise ValueError("temperature applies to sampling: temperature only → set sampling")
        return self

    @property
    def exponent(self) -> float:
        """``1/T`` of ``p_i ∝ n_i^(1/T)`` (0 for uniform sampling)."""
        return {"proportional": 1.0, "uniform": 0.0}.get(self.sampling, 1.0 / self.temperature)


# Tasks on one dataset.
SingleTaskConfig = Annotated[
    ClassificationTaskConfig
    | TokenClassificationTaskConfig
    | LanguageModelingTaskConfig
    | GenerationTaskConfig,
    Field(discriminator="name"),
]

TaskConfig = Annotated[
    ClassificationTaskConfig
    | TokenClassificationTaskConfig
    | LanguageModelingTaskConfig
    | GenerationTaskConfig
    | MultiTaskConfig,
    Field(discriminator="name"),
]
