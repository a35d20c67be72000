"""The whole recipe: one typed object validated at load time."""

from __future__ import annotations

from pydantic import Field, model_validator

from domaintune.config.methods import DEFAULT_LR, FullConfig, MethodConfig
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
    def _method_learning_rate(self) -> Recipe:
        """Without ``train.lr``, train at the learning rate tuned for the method."""
        if self.train.lr is None:
            self.train.lr = DEFAULT_LR[self.method.name]
        return self
