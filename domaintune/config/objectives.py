"""Recipe sections for objectives: extra loss terms added inside the training step."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from domaintune.config.sections import Section


class L2SPConfig(Section):
    """L2-SP: pull weights towards their pretrained values (Li et al., 2018)."""

    name: Literal["l2sp"] = Field(description="Objective name.")
    weight: float = Field(0.01, gt=0, description="Coefficient of 0.5 * ||theta - theta0||^2.")


# A discriminated union needs two members at least; Annotated keeps it ready for more.
ObjectiveConfig = Annotated[L2SPConfig, Field(discriminator="name")]
