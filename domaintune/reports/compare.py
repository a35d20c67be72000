"""Compare finished runs: differing recipe keys and main metrics, for the terminal and HTML."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domaintune.errors import ConfigError
from domaintune.reports.html import format_number, read_finished, render

MISSING = "—"


@dataclass
class Comparison:
    """What ``compare_runs`` found: one column per run."""

    runs: list[str]
    paths: list[str]
    differing: dict[str, list[str]] = field(default_factory=dict)
    metrics: dict[str, list[Any]] = field(default_factory=dict)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dictionaries as dotted keys (``train.lr``); lists of dictionaries by index."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(tree, list) and any(isinstance(v, dict) for v in tree):
        out = {}
        for i, value in enumerate(tree):
            out.update(flatten(value, f"{prefix}.{i}"))
        return out
    return {prefix: tree}


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return format_number(value)


def _names(paths: list[Path]) -> list[str]:
    """Folder names, or full paths where two runs share a name."""
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def compare_runs(run_dirs: list[str | Path]) -> Comparison:
    """Read finished run folders and collect their differing recipe keys and main metrics.

    Raises:
        ConfigError: No run folder was given.
        RunError: A folder is not a finished run (named in the message).

    """
    import yaml

    if not run_dirs:
        raise ConfigError("compare: no run folder given → pass two or more run folders")
    paths = [Path(p) for p in run_dirs]
    recipes: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for path in paths:
        _, result, recipe_text = read_finished(path)
        recipes.append(flatten(yaml.safe_load(recipe_text) or {}))
        results.append(result)
    comparison = Comparison(_names(paths), [str(p) for p in paths])
    keys = sorted(set().union(*recipes))
    for key in keys:
        values = [recipe.get(key, MISSING) for recipe in recipes]
        if any(v != values[0] for v in values[1:]):
            comparison.differing[key] = [v if v is MISSING else _show(v) for v in values]
    comparison.metrics = _metric_rows(results)
    return comparison


def _metric_rows(results: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The selection metric (test and validation), training cost and memory of each run."""
    metrics = [r.get("metric", "") for r in results]
    shared = metrics[0] if len(set(metrics)) == 1 else None
    rows: dict[str, list[Any]] = {}
    if shared:
        rows[f"test {shared}"] = [(r.get("test") or {}).get(shared) for r in results]
        rows[f"validation {shared}"] = [(r.get("validation") or {}).get(shared) for r in results]
    else:  # different tasks: name each run's metric beside its value
        rows["test metric"] = [
            f"{m} {format_number((r.get('test') or {}).get(m))}"
            for m, r in zip(metrics, results, strict=True)
        ]
    train = [r.get("train") or {} for r in results]
    rows["train seconds"] = [t.get("seconds") for t in train]
    rows["steps"] = [t.get("steps") for t in train]
    rows["samples / s"] = [t.get("samples_per_second") for t in train]
    rows["peak RSS (MiB)"] = [r.get("peak_rss_mib") for r in results]
    rows["trainable parameters"] = [t.get("trainable_parameters") for t in train]
    rows["precision"] = [t.get("precision") for t in train]
    return {k: v for k, v in rows.items() if any(x is not None for x in v)}


def best_index(comparison: Comparison) -> int | None:
    """The column of the best test value of the shared metric (None if not comparable)."""
    from domaintune.evaluation.metrics import greater_is_better

    key = next((k for k in comparison.metrics if k.startswith("test ") and k != "test metric"), "")
    values = comparison.metrics.get(key, [])
    scored = [(v, i) for i, v in enumerate(values) if isinstance(v, (int, float))]
    if not scored:
        return None
    pick = max if greater_is_better(key.removeprefix("test ")) else min
    return pick(scored)[1]


def comparison_tables(comparison: Comparison) -> list[Any]:
    """Rich tables for the terminal: differing recipe keys, then metrics."""
    from rich.table import Table

    best = best_index(comparison)
    tables = []
    recipe = Table(title="recipe keys that differ")
    metrics = Table(title="metrics")
    for table in (recipe, metrics):
        table.add_column("")
        for i, name in enumerate(comparison.runs):
            table.add_column(name + (" (best)" if i == best else ""), justify="right")
    if comparison.differing:
        for key, values in comparison.differing.items():
            recipe.add_row(key, *values)
        tables.append(recipe)
    for key, row in comparison.metrics.items():
        metrics.add_row(key, *(format_number(v) if v is not None else MISSING for v in row))
    tables.append(metrics)
    return tables


def comparison_html(comparison: Comparison) -> str:
    """The comparison as one self-contained HTML page (autoescaped)."""
    rows = {
        k: [format_number(v) if v is not None else MISSING for v in vs]
        for k, vs in comparison.metrics.items()
    }
    return render(
        "compare.html.j2",
        comparison=comparison,
        metrics=rows,
        best=best_index(comparison),
    )
