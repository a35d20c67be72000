"""Recipe sections for adaptation methods: what trains."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from domaintune.config.sections import Section


class FullConfig(Section):
    """Full fine-tuning: every parameter trains."""

    name: Literal["full"] = Field(description="Method name.")
    layerwise_lr_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Multiply the LR by this factor per layer going down (1.0 = no decay).",
    )


class FreezeConfig(Section):
    """Freeze the embeddings and/or the lowest layers; optional layer-wise LR decay."""

    name: Literal["freeze"] = Field(description="Method name.")
    embeddings: bool = Field(True, description="Freeze the embedding layer.")
    layers: int = Field(0, ge=0, description="Freeze the first N transformer layers.")
    layerwise_lr_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Multiply the LR by this factor per layer going down (1.0 = no decay).",
    )


class LoraConfig(Section):
    """LoRA through peft; the task head always trains."""

    name: Literal["lora"] = Field(description="Method name.")
    r: int = Field(8, ge=1, le=1024, description="Rank of the update matrices.")
    alpha: float = Field(16, gt=0, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        None,
        description="Module names to adapt; null uses peft's default for the architecture.",
    )


MethodConfig = Annotated[FullConfig | FreezeConfig | LoraConfig, Field(discriminator="name")]
