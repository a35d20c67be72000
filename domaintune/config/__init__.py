"""Typed recipes: pydantic models, YAML loading and dotted overrides (no torch here)."""

from domaintune.config.augment import (
    AugmentConfig,
    BackTranslationConfig,
    ContextualConfig,
    EDAConfig,
    MentionReplacementConfig,
    TrainSubsetConfig,
)
from domaintune.config.generation import DecodingConfig, GenerationTaskConfig
from domaintune.config.load import apply_overrides, dump_recipe, load_recipe
from domaintune.config.methods import (
    AdaLoraConfig,
    AdapterConfig,
    BitFitConfig,
    FreezeConfig,
    FullConfig,
    IA3Config,
    LoraConfig,
    MethodConfig,
    PrefixConfig,
    PromptTuningConfig,
)
from domaintune.config.multitask import (
    MultiTaskConfig,
    SingleTaskConfig,
    SubTaskConfig,
    TaskConfig,
)
from domaintune.config.objectives import (
    DANNConfig,
    DistillConfig,
    EWCConfig,
    FGMConfig,
    L2SPConfig,
    ObjectiveConfig,
    PGDConfig,
)
from domaintune.config.recipe import Recipe
from domaintune.config.sections import (
    ClassificationTaskConfig,
    DataConfig,
    EvalConfig,
    LanguageModelingTaskConfig,
    ModelConfig,
    TokenClassificationTaskConfig,
    TrainConfig,
    VocabExpansionConfig,
)

__all__ = [
    "AdaLoraConfig",
    "AdapterConfig",
    "AugmentConfig",
    "BackTranslationConfig",
    "BitFitConfig",
    "ClassificationTaskConfig",
    "ContextualConfig",
    "DANNConfig",
    "DataConfig",
    "DecodingConfig",
    "DistillConfig",
    "EDAConfig",
    "EWCConfig",
    "EvalConfig",
    "FGMConfig",
    "FreezeConfig",
    "FullConfig",
    "GenerationTaskConfig",
    "IA3Config",
    "L2SPConfig",
    "LanguageModelingTaskConfig",
    "LoraConfig",
    "MentionReplacementConfig",
    "MethodConfig",
    "ModelConfig",
    "MultiTaskConfig",
    "ObjectiveConfig",
    "PGDConfig",
    "PrefixConfig",
    "PromptTuningConfig",
    "Recipe",
    "SingleTaskConfig",
    "SubTaskConfig",
    "TaskConfig",
    "TokenClassificationTaskConfig",
    "TrainConfig",
    "TrainSubsetConfig",
    "VocabExpansionConfig",
    "apply_overrides",
    "dump_recipe",
    "load_recipe",
]
