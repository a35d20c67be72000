"""Recipe sections for objectives: extra loss terms added inside the training step."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from domaintune.config.sections import Section


class L2SPConfig(Section):
    """L2-SP: pull weights towards their pretrained values (Li et al., 2018)."""

    name: Literal["l2sp"] = Field(description="Objective name.")
    weight: float = Field(0.01, gt=0, description="Coefficient of 0.5 * ||theta - theta0||^2.")


class EWCConfig(Section):
    """EWC: a Fisher-weighted pull towards the stage's starting weights (Kirkpatrick et al., 2017).

    The Fisher is estimated on an earlier task's data (``data``) with the starting model, loaded
    from an earlier run's ``fisher.safetensors`` (``fisher_from``), or both with ``online``.
    """

    name: Literal["ewc"] = Field(description="Objective name.")
    weight: float = Field(
        100.0, gt=0, le=1e9, description="lambda in lambda/2 * sum F_i (theta_i - theta*_i)^2."
    )
    data: list[str] = Field(
        default_factory=list,
        description="The earlier task's (training) files to estimate the Fisher on, read like "
        "this recipe's data (format from the extension); 'stage:<name>' in a pipeline means "
        "that stage's training file.",
    )
    fisher_from: str | None = Field(
        None,
        description="A run folder (or 'stage:<name>' in a pipeline) whose fisher.safetensors "
        "to load instead of estimating (with online: to decay and add to the new estimate).",
    )
    samples: int = Field(
        1000, ge=1, le=1_000_000, description="Most examples of 'data' the Fisher is estimated on."
    )
    estimator: Literal["true", "empirical"] = Field(
        "true",
        description="true: labels sampled from the model's own predictions (the Fisher of "
        "Kirkpatrick et al.; softmax heads only); empirical: the gold labels (any head).",
    )
    online: bool = Field(
        False,
        description="Online EWC (Schwarz et al., 2018): Fisher = gamma * loaded (fisher_from) + "
        "new estimate (data), anchored at this stage's starting weights.",
    )
    gamma: float = Field(
        1.0, gt=0, le=1, description="online only: decay of the loaded running Fisher."
    )
    seed: int = Field(0, description="Seed of the example sample and the sampled labels.")

    @model_validator(mode="after")
    def _one_source(self) -> EWCConfig:
        if self.online and not self.data:
            raise ValueError("online: true needs data (the newest task's files) → set data")
        if not self.online and bool(self.data) == bool(self.fisher_from):
            raise ValueError(
                "give exactly one of data (estimate the Fisher) or fisher_from (load it), or "
                "set online: true to combine them"
            )
        return self


class DistillConfig(Section):
    """LwF-style distillation from the model as it was at the start of the stage (Li & Hoiem)."""

    name: Literal["distill"] = Field(description="Objective name.")
    weight: float = Field(1.0, gt=0, le=1e6, description="Coefficient of the distillation term.")
    temperature: float = Field(
        2.0, gt=0, le=100, description="Softmax temperature T; the KL is scaled by T^2."
    )


ObjectiveConfig = Annotated[L2SPConfig | EWCConfig | DistillConfig, Field(discriminator="name")]
