"""Continual learning: the forgetting matrix of a pipeline's sequence of tasks.

``R[k][j]`` is the test score on stage j's task of the model after stage k (``j <= k``; the
diagonal is stage k's own test score from its ``results.json``, the rest re-evaluated on stage
j's test split). Average forgetting after the last stage T (Chaudhry et al., 2018):
``mean over j < T of (max over l in [j, T-1] of R[l][j]) - R[T][j]``: how far each earlier
task fell from the best score it ever had, in the metric's own units (F1 points as fractions).
Only stages of the same task type as stage k are re-evaluated (a language model cannot be
scored on a tagging test set); other cells are null.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domaintune.config.recipe import Recipe
from domaintune.data.pipeline import RawSplits, load_splits
from domaintune.errors import DomaintuneError

EARLIER_FILE = "earlier-tasks.json"  # per stage run folder: its scores on earlier stages' tests


def forgetting_summary(folder: Path, names: list[str], recipes: list[Recipe]) -> dict[str, Any]:
    """The forgetting matrix, each task's forgetting and the average, for ``pipeline.json``."""
    results = {}
    for name in names:
        path = folder / name / "results.json"
        if path.is_file():
            results[name] = json.loads(path.read_text(encoding="utf-8"))
    done = [n for n in names if n in results]
    matrix: list[list[float | None]] = []
    for k, name in enumerate(done):
        row: list[float | None] = []
        earlier = _earlier_scores(folder / name, done[:k], dict(zip(names, recipes, strict=True)))
        for j, other in enumerate(done):
            metric = results[other].get("metric")
            if j == k:
                value = results[name].get("test", {}).get(metric)
            elif j < k:
                value = (earlier.get(other) or {}).get(metric)
            else:
                value = None
            row.append(None if value is None else round(float(value), 6))
        matrix.append(row)
    forgetting = _forgetting(matrix)
    known = [v for v in forgetting if v is not None]
    last = [v for v in (matrix[-1] if matrix else []) if v is not None]
    return {
        "tasks": done,
        "metrics": [results[n].get("metric") for n in done],
        "matrix": matrix,
        "forgetting": dict(zip(done[:-1], forgetting, strict=True)),
        "average_forgetting": round(sum(known) / len(known), 6) if known else None,
        "average_final_score": round(sum(last) / len(last), 6) if last else None,
        "definition": "matrix[k][j]: test score on task j after stage k; forgetting of task j "
        "= max over stages l in [j, last) of matrix[l][j] minus matrix[last][j]; average over "
        "the earlier tasks (Chaudhry et al., 2018)",
    }


def _forgetting(matrix: list[list[float | None]]) -> list[float | None]:
    """Per earlier task: best score before the last stage minus the last stage's."""
    if len(matrix) < 2:
        return []
    out: list[float | None] = []
    for j in range(len(matrix) - 1):
        before = [v for row in matrix[j:-1] if (v := row[j]) is not None]
        final = matrix[-1][j]
        out.append(None if not before or final is None else round(max(before) - final, 6))
    return out


def _earlier_scores(
    run_dir: Path, earlier: list[str], recipes: dict[str, Recipe]
) -> dict[str, dict[str, Any] | None]:
    """Scores of ``run_dir``'s final model on each earlier stage's test split (cached)."""
    cache = run_dir / EARLIER_FILE
    scores: dict[str, Any] = (
        json.loads(cache.read_text(encoding="utf-8")) if cache.is_file() else {}
    )
    missing = [n for n in earlier if n not in scores]
    if not missing:
        return scores
    from domaintune.deploy.load import load_run

    loaded = load_run(run_dir)
    own = recipes[run_dir.name].task.name
    for name in missing:
        if recipes[name].task.name != own or loaded.task.kind == "lm":
            scores[name] = None
            continue
        try:
            scores[name] = evaluate_on_stage(loaded, recipes[name])
        except DomaintuneError as exc:  # e.g. the model never learned that task's labels
            scores[name] = {"error": str(exc)}
    cache.write_text(json.dumps(scores, indent=1, ensure_ascii=False), encoding="utf-8")
    return scores


def evaluate_on_stage(loaded: Any, recipe: Recipe) -> dict[str, Any]:
    """Metrics of a loaded run on the test split of another stage's recipe."""
    from domaintune.deploy.predict import predict_outputs
    from domaintune.evaluation.evaluate import check_eval_labels, evaluation_predictor

    data = recipe.data.model_copy(update={"replay": None})
    raw = load_splits(data, loaded.task.kind)
    examples = raw.splits["test"]
    check_eval_labels(loaded.task, RawSplits({"train": [], "test": examples}, raw.origins))
    outputs, encoded = predict_outputs(evaluation_predictor(loaded), examples)
    scores: dict[str, Any] = loaded.task.metrics(outputs, examples, encoded=encoded)
    return {k: v for k, v in scores.items() if isinstance(v, (int, float))}
