"""Pipelines: several recipes run in order, a later one starting from an earlier one's model.

A pipeline file has a ``stages:`` list instead of a recipe's sections. Each stage names an
inline recipe or a recipe file (relative to the pipeline file) and may set
``model.init_from: stage:<earlier stage>``; the runner replaces that with the earlier stage's
run folder, so the user never copies paths by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from domaintune.config.load import apply_overrides, format_error, read_yaml
from domaintune.config.recipe import Recipe
from domaintune.config.sections import Section
from domaintune.errors import ConfigError

STAGE_PREFIX = "stage:"


class StageConfig(Section):
    """One stage: a recipe (inline mapping or file) and optional dotted overrides."""

    name: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9_-]+$", description="Stage name (its run sub-folder)."
    )
    recipe: str | dict[str, Any] = Field(
        description="A recipe mapping, or a recipe file relative to the pipeline file."
    )
    overrides: list[str] = Field(
        default_factory=list, description="Dotted overrides for this stage, e.g. train.lr=1e-4."
    )

    @field_validator("name")
    @classmethod
    def _not_a_section(cls, value: str) -> str:
        if value in Recipe.model_fields:
            raise ValueError(f"a stage cannot be named like a recipe section ({value})")
        return value


class PipelineConfig(Section):
    """Stages run in order into ``<output>/<stage name>``."""

    stages: list[StageConfig] = Field(min_length=1, description="The stages, in order.")
    output_dir: str | None = Field(None, description="Pipeline folder; null: runs/<file name>.")


def is_pipeline(path: str | Path) -> bool:
    """Whether a YAML file is a pipeline (has ``stages:``) rather than a single recipe."""
    return "stages" in read_yaml(Path(path))


def load_pipeline(
    path: str | Path, overrides: list[str] | None = None
) -> tuple[PipelineConfig, list[Recipe]]:
    """Validate a pipeline and every stage recipe, reporting all problems at once.

    An override ``NAME.key=value`` applies to stage NAME only; any other override applies to
    every stage (e.g. ``train.seed=1``).
    """
    path = Path(path)
    try:
        pipeline = PipelineConfig.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError("\n".join(format_error(str(path), e) for e in exc.errors())) from None
    names = [s.name for s in pipeline.stages]
    errors: list[str] = []
    if len(set(names)) != len(names):
        errors.append(f"{path}: stages: names repeat ({names}) → give each stage its own name")
    recipes: list[Recipe] = []
    for index, stage in enumerate(pipeline.stages):
        origin = f"{path} (stage {stage.name})"
        if isinstance(stage.recipe, str):
            origin = str(path.parent / stage.recipe)
            data = read_yaml(path.parent / stage.recipe)
        else:
            data = stage.recipe
        mine = [o for o in overrides or [] if o.split(".", 1)[0] not in names]
        mine += [o.split(".", 1)[1] for o in overrides or [] if o.split(".", 1)[0] == stage.name]
        data = apply_overrides(data, [*stage.overrides, *mine])
        try:
            recipe = Recipe.model_validate(data)
        except ValidationError as exc:
            errors.extend(format_error(origin, e) for e in exc.errors())
            continue
        source = recipe.model.init_from or ""
        if source.startswith(STAGE_PREFIX) and source[len(STAGE_PREFIX) :] not in names[:index]:
            errors.append(
                f"{origin}: model.init_from: {source!r}: no earlier stage of that name → "
                f"use one of {[STAGE_PREFIX + n for n in names[:index]]}"
            )
        if recipe.train.processes > 1:
            errors.append(
                f"{origin}: train.processes: {recipe.train.processes}: pipelines run stages in "
                "one process → set 1, or run the stages as separate recipes"
            )
        recipes.append(recipe)
    if errors:
        raise ConfigError("\n".join(errors))
    return pipeline, recipes
