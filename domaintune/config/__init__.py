"""Typed recipes: pydantic models, YAML loading and dotted overrides (no torch here)."""

from domaintune.config.load import apply_overrides, dump_recipe, load_recipe
from domaintune.config.methods import FreezeConfig, FullConfig, LoraConfig, MethodConfig
from domaintune.config.objectives import L2SPConfig, ObjectiveConfig
from domaintune.config.recipe import Recipe
from domaintune.config.sections import (
    ClassificationTaskConfig,
    DataConfig,
    EvalConfig,
    LanguageModelingTaskConfig,
    ModelConfig,
    TaskConfig,
    TokenClassificationTaskConfig,
    TrainConfig,
    VocabExpansionConfig,
)

__all__ = [
    "ClassificationTaskConfig",
    "DataConfig",
    "EvalConfig",
    "FreezeConfig",
    "FullConfig",
    "L2SPConfig",
    "LanguageModelingTaskConfig",
    "LoraConfig",
    "MethodConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "Recipe",
    "TaskConfig",
    "TokenClassificationTaskConfig",
    "TrainConfig",
    "VocabExpansionConfig",
    "apply_overrides",
    "dump_recipe",
    "load_recipe",
]
