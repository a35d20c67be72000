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
    evaluate_earlier: bool = Field(
        False,
        description="Continual learning: after each stage, re-evaluate every earlier stage of "
        "the same task type on its test split; pipeline.json gets the forgetting matrix.",
    )


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
        for where, source in stage_references(recipe):
            if source[len(STAGE_PREFIX) :] not in names[:index]:
                errors.append(
                    f"{origin}: {where}: {source!r}: no earlier stage of that name → "
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


def stage_references(recipe: Recipe) -> list[tuple[str, str]]:
    """Every ``stage:<name>`` value of a recipe, with its field path."""
    found = [("model.init_from", recipe.model.init_from or "")]
    if recipe.data.replay is not None:
        found += [(f"data.replay.files.{i}", f) for i, f in enumerate(recipe.data.replay.files)]
    for i, objective in enumerate(recipe.objectives):
        found += [
            (f"objectives.{i}.data.{j}", f) for j, f in enumerate(getattr(objective, "data", []))
        ]
        found.append((f"objectives.{i}.fisher_from", getattr(objective, "fisher_from", None) or ""))
    return [(where, value) for where, value in found if value.startswith(STAGE_PREFIX)]


def resolve_stages(recipe: Recipe, folder: Path, earlier: dict[str, Recipe]) -> Recipe:
    """Replace ``stage:<name>`` references with what they stand for.

    A model or Fisher source becomes that stage's run folder, a data file (replay, EWC data)
    that stage's training file.
    """

    def folder_of(value: str | None) -> str | None:
        if value is None or not value.startswith(STAGE_PREFIX):
            return value
        return str(folder / value[len(STAGE_PREFIX) :])

    def train_file(value: str) -> str:
        if not value.startswith(STAGE_PREFIX):
            return value
        return str(earlier[value[len(STAGE_PREFIX) :]].data.train)

    update: dict[str, Any] = {
        "model": recipe.model.model_copy(update={"init_from": folder_of(recipe.model.init_from)})
    }
    if recipe.data.replay is not None:
        replay = recipe.data.replay.model_copy(
            update={"files": [train_file(f) for f in recipe.data.replay.files]}
        )
        update["data"] = recipe.data.model_copy(update={"replay": replay})
    objectives = []
    for objective in recipe.objectives:
        changes: dict[str, Any] = {}
        if hasattr(objective, "data"):
            changes["data"] = [train_file(f) for f in objective.data]
        if hasattr(objective, "fisher_from"):
            changes["fisher_from"] = folder_of(objective.fisher_from)
        objectives.append(objective.model_copy(update=changes))
    update["objectives"] = objectives
    return recipe.model_copy(update=update)
