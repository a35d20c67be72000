"""The whole recipe: one typed object validated at load time."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from domaintune.config.methods import (
    DEFAULT_EPOCHS_BY_TASK,
    FullConfig,
    MethodConfig,
    default_lr,
)
from domaintune.config.multitask import MultiTaskConfig, TaskConfig
from domaintune.config.objectives import ObjectiveConfig
from domaintune.config.sections import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    Section,
    TrainConfig,
)


class Recipe(Section):
    """A complete training recipe: task, model, data, method, objectives, training, evaluation."""

    task: TaskConfig = Field(
        description="What to learn: classification, token_classification, language_modeling or "
        "multitask."
    )
    model: ModelConfig = Field(
        default_factory=lambda: ModelConfig(), description="Pretrained model."
    )
    data: DataConfig = Field(
        description="Data files and reading options (multitask: left out, it is the first "
        "task's data section)."
    )
    method: MethodConfig = Field(
        default_factory=lambda: FullConfig(name="full"), description="What trains."
    )
    objectives: list[ObjectiveConfig] = Field(
        default_factory=list, description="Extra loss terms (e.g. l2sp)."
    )
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(), description="Training loop.")
    eval: EvalConfig = Field(default_factory=lambda: EvalConfig(), description="Evaluation.")
    output_dir: str | None = Field(None, description="Run folder; null: runs/<recipe file name>.")

    @model_validator(mode="before")
    @classmethod
    def _multitask_data(cls, data: Any) -> Any:
        """A multi-task recipe's ``data`` is its first task's (each task has its own data)."""
        task = data.get("task") if isinstance(data, dict) else None
        if isinstance(task, dict) and task.get("name") == "multitask" and "data" not in data:
            tasks = task.get("tasks")
            first = tasks[0] if isinstance(tasks, list) and tasks else None
            if isinstance(first, dict) and isinstance(first.get("data"), dict):
                data = {**data, "data": first["data"]}
            else:  # the task section's own error says what is missing; no second error here
                data = {**data, "data": {"train": "(the first task's data)"}}
        return data

    @model_validator(mode="after")
    def _one_data_section(self) -> Recipe:
        if isinstance(self.task, MultiTaskConfig) and self.data != self.task.tasks[0].data:
            raise ValueError(
                "a multitask recipe takes each task's data under task.tasks[N].data → remove "
                "the top-level data section"
            )
        return self

    @model_validator(mode="after")
    def _few_shot_needs_classes(self) -> Recipe:
        pairs = [(self.task, self.data)] + [
            (t.task, t.data) for t in getattr(self.task, "tasks", [])
        ]
        for task, data in pairs:
            if data.few_shot is not None and getattr(task, "problem", None) != "single_label":
                raise ValueError(
                    "data.few_shot samples k examples per class → use it with task "
                    "classification, problem single_label"
                )
        return self

    @model_validator(mode="after")
    def _method_defaults(self) -> Recipe:
        """Without ``train.lr`` / ``train.epochs``, use the values tuned for the method and task."""
        if self.train.lr is None:
            self.train.lr = default_lr(self.method.name, self.task.name)
        epochs = DEFAULT_EPOCHS_BY_TASK.get((self.method.name, self.task.name))
        if epochs is not None and "epochs" not in self.train.model_fields_set:
            self.train.epochs = epochs
        return self
