"""The whole recipe: one typed object validated at load time."""

from __future__ import annotations

from pydantic import Field, model_validator

from domaintune.config.methods import (
    DEFAULT_EPOCHS_BY_TASK,
    FullConfig,
    MethodConfig,
    default_lr,
)
from domaintune.config.objectives import ObjectiveConfig
from domaintune.config.sections import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    Section,
    TaskConfig,
    TrainConfig,
)


class Recipe(Section):
    """A complete training recipe: task, model, data, method, objectives, training, evaluation."""

    task: TaskConfig = Field(
        description="What to learn: classification, token_classification or language_modeling."
    )
    model: ModelConfig = Field(
        default_factory=lambda: ModelConfig(), description="Pretrained model."
    )
    data: DataConfig = Field(description="Data files and reading options.")
    method: MethodConfig = Field(
        default_factory=lambda: FullConfig(name="full"), description="What trains."
    )
    objectives: list[ObjectiveConfig] = Field(
        default_factory=list, description="Extra loss terms (e.g. l2sp)."
    )
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(), description="Training loop.")
    eval: EvalConfig = Field(default_factory=lambda: EvalConfig(), description="Evaluation.")
    output_dir: str | None = Field(None, description="Run folder; null: runs/<recipe file name>.")

    @model_validator(mode="after")
    def _method_defaults(self) -> Recipe:
        """Without ``train.lr`` / ``train.epochs``, use the values tuned for the method and task."""
        if self.train.lr is None:
            self.train.lr = default_lr(self.method.name, self.task.name)
        epochs = DEFAULT_EPOCHS_BY_TASK.get((self.method.name, self.task.name))
        if epochs is not None and "epochs" not in self.train.model_fields_set:
            self.train.epochs = epochs
        return self
