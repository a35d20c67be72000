"""Load a recipe from YAML with dotted overrides and report every problem at once."""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from domaintune.config.recipe import Recipe
from domaintune.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-4`` as a float (YAML 1.2; PyYAML's 1.1 needs a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``train.lr=1e-4`` into a key path and a YAML-typed value."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r}: expected KEY=VALUE with a dotted key → write e.g. train.lr=1e-4"
        )
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key part → write e.g. train.lr=1e-4")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b.c=value`` override set (sections are created)."""
    result = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = result
        for part in path[:-1]:
            if isinstance(node, list):  # a list item by index: task.tasks.0.weight=2
                node = node[_index(text, part, node)]
                continue
            child = node.get(part)
            if not isinstance(child, (dict, list)):
                child = {}
                node[part] = child
            node = child
        if isinstance(node, list):
            node[_index(text, path[-1], node)] = value
        else:
            node[path[-1]] = value
    return result


def _index(text: str, part: str, items: list[Any]) -> int:
    """The list index ``part`` of an override, or a one-line error."""
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(
            f"override {text!r}: {part!r} is not an item of a list of {len(items)} → use an "
            f"index from 0 to {len(items) - 1}"
        )
    return int(part)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a recipe file into a dict, with one-line errors for missing or malformed files."""
    if not path.is_file():
        raise ConfigError(
            f"{path}: recipe file not found → check the path, or list shipped "
            "recipes with 'domaintune recipes list'"
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: {where}{problem} → fix the YAML syntax there") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the recipe must be a mapping of sections (task:, data:, ...), "
            f"got {type(data).__name__} → start the file with 'task:'"
        )
    return data


def load_recipe(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """Load and validate a recipe from a YAML file (or a dict), applying dotted overrides.

    Args:
        source: Path of a YAML recipe, or an already-parsed mapping.
        overrides: ``key.path=value`` strings applied on top, e.g. ``["train.lr=1e-4"]``.

    Returns:
        The validated recipe.

    Raises:
        ConfigError: listing every problem, one line each, as ``file: field: value: what → fix``.

    """
    if isinstance(source, dict):
        origin, data = "<recipe>", source
    else:
        path = Path(source)
        origin, data = str(path), read_yaml(path)
    data = apply_overrides(data, overrides or [])
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = [format_error(origin, err) for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def format_error(origin: str, err: Any) -> str:
    """Format one pydantic error as ``file: field.path: value: what is wrong → fix``."""
    loc = [str(p) for p in err["loc"]]
    # Discriminated unions add the tag (e.g. 'lora') to the path: drop it for the user.
    field_path = ".".join(_drop_union_tags(err["loc"])) or "(recipe)"
    kind = err["type"]
    value = err.get("input")
    shown = _show(value)
    if kind == "extra_forbidden":
        parent = _model_at(Recipe, [p for p in _drop_union_tags(err["loc"])][:-1], err["loc"])
        options = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(loc[-1], options, n=1)
        fix = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(options)}"
        return f"{origin}: {field_path}: {shown}: unknown key → {fix}"
    if kind == "missing":
        return f"{origin}: {field_path}: required field is missing → add it"
    if kind == "union_tag_invalid":
        expected = err.get("ctx", {}).get("expected_tags", "")
        tag = _show(err.get("ctx", {}).get("tag", value))
        return f"{origin}: {field_path}.name: {tag}: unknown name → use one of {expected}"
    if kind == "union_tag_not_found":
        expected = err.get("ctx", {}).get("discriminator", "'name'")
        return f"{origin}: {field_path}: no {expected} given → add {expected}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{origin}: {field_path}: {shown}: not allowed → use {expected}"
    message = err["msg"].removeprefix("Value error, ")
    if "→" in message:  # the validator's message names its own fix
        return f"{origin}: {field_path}: {shown}: {message}"
    return f"{origin}: {field_path}: {shown}: {message} → {_fix_for(kind, err.get('ctx', {}))}"


_BOUNDS = {
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
}


def _fix_for(kind: str, ctx: dict[str, Any]) -> str:
    """Suggest a fix for common pydantic error kinds."""
    if kind in _BOUNDS:
        words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
        key = _BOUNDS[kind]
        return f"use a value {words[key]} {ctx.get(key)}"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return "use a whole number"
    if kind in {"float_parsing", "float_type"}:
        return "use a number, e.g. 3.0e-5"
    if kind in {"bool_parsing", "bool_type"}:
        return "use true or false"
    if kind in {"string_type"}:
        return "use a string"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return "write this section as a mapping (key: value lines)"
    if kind in {"list_type"}:
        return "write a list, e.g. [a, b]"
    return "fix the value"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _drop_union_tags(loc: tuple[Any, ...]) -> list[str]:
    """Remove discriminator tags that pydantic inserts after a union field in error paths."""
    out: list[str] = []
    for part in loc:
        if out and out[-1] in {"task", "method"} and part in _TAGS:
            continue
        if len(out) >= 2 and out[-2] == "objectives" and part in _TAGS:
            continue
        out.append(str(part))
    return out


def _union_tags() -> set[str]:
    """Every ``name`` literal of the tagged unions (tasks, methods, objectives)."""
    from domaintune.config.methods import MethodConfig
    from domaintune.config.multitask import TaskConfig
    from domaintune.config.objectives import ObjectiveConfig

    tags: set[str] = set()
    for union in (TaskConfig, MethodConfig, ObjectiveConfig):
        for member in _flatten(union):
            if isinstance(member, type) and issubclass(member, BaseModel):
                tags.update(typing.get_args(member.model_fields["name"].annotation))
    return tags


def _model_at(
    model: type[BaseModel], path: list[str], raw_loc: tuple[Any, ...]
) -> type[BaseModel] | None:
    """Find the pydantic model class that owns the field at ``path`` (for key suggestions)."""
    current: Any = model
    raw = [str(p) for p in raw_loc]
    for part in path:
        if part.isdigit():
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _resolve(field.annotation, raw)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _resolve(annotation: Any, raw_loc: list[str]) -> Any:
    """Pick the BaseModel class inside an annotation (Optional, list, tagged union)."""
    candidates = [
        a for a in _flatten(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
    ]
    for cand in candidates:
        tag = cand.model_fields.get("name")
        if (
            tag is not None
            and typing.get_args(tag.annotation)
            and any(t in raw_loc for t in typing.get_args(tag.annotation))
        ):
            return cand
    return candidates[0] if candidates else None


def _flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    out: list[Any] = []
    for arg in args:
        out.extend(_flatten(arg))
    return out


def dump_recipe(recipe: Recipe) -> str:
    """Serialise a recipe (all defaults resolved) as YAML; loading it gives the same recipe."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


_TAGS = _union_tags()
