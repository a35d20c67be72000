"""The whole recipe: one typed object validated at load time."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from domaintune.config.generation import CHEAP_METRICS, GenerationTaskConfig
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
        description="What to learn: classification, token_classification, language_modeling, "
        "generation or multitask."
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
    def _augmentations_fit_the_task(self) -> Recipe:
        for i, aug in enumerate(self.data.augment):
            if aug.name == "mention_replacement" and self.task.name != "token_classification":
                raise ValueError(
                    f"data.augment.{i}: mention_replacement swaps entity mentions, which only "
                    "token_classification data has → use eda or contextual"
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
    def _knowledge_fits_task(self) -> Recipe:
        """``data.knowledge`` is injected (tasks) or masked (``task.knowledge_masking``)."""
        if isinstance(self.task, MultiTaskConfig):
            if any(t.data.knowledge is not None for t in self.task.tasks):
                raise ValueError(
                    "task.tasks[N].data.knowledge: knowledge injection is not supported in a "
                    "multitask recipe → train the task on its own, or remove data.knowledge"
                )
            return self
        masking = getattr(self.task, "knowledge_masking", None)
        if masking and self.data.knowledge is None:
            raise ValueError(
                "task.knowledge_masking: true needs the entities' file → set data.knowledge "
                "(e.g. {file: builtin:ncbi-disease/knowledge.tsv})"
            )
        if masking is False and self.data.knowledge is not None:
            raise ValueError(
                "data.knowledge: a language_modeling task uses it only for masking → set "
                "task.knowledge_masking: true, or remove data.knowledge"
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

    @model_validator(mode="after")
    def _generation_defaults(self) -> Recipe:
        """Generation: packed rows default to ``data.max_length``; selection needs no decoding."""
        if not isinstance(self.task, GenerationTaskConfig):
            return self
        if self.task.pack_length is None:
            self.task.pack_length = self.data.max_length
        if self.eval.metric is not None and self.eval.metric not in CHEAP_METRICS:
            raise ValueError(
                f"eval.metric: {self.eval.metric!r}: a generation run selects its checkpoint "
                "on perplexity or loss (text is generated at the final evaluation only) → "
                "use perplexity"
            )
        return self
