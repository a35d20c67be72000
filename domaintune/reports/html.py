"""The run report: one self-contained ``report.html`` (inline CSS and PNG plots, no URLs).

Everything comes from the run folder (``recipe.resolved.yaml``, ``metrics.jsonl``,
``results.json``), so ``domaintune report RUN_DIR`` rebuilds it at any time.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from domaintune.errors import RunError
from domaintune.runs import RunFolder

REPORT_FILE = "report.html"
TEMPLATES = Path(__file__).parent / "templates"


def render(template: str, **context: Any) -> str:
    """Render one of this package's jinja2 templates with autoescaping on (all user text)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    return env.get_template(template).render(**context)


def format_number(value: Any, digits: int = 4) -> str:
    """Integers with thousands separators, floats to ``digits`` significant places."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return str(value)


def read_finished(run_dir: str | Path) -> tuple[RunFolder, dict[str, Any], str]:
    """The run folder, its ``results.json`` and resolved recipe text; a one-line error if absent."""
    run = RunFolder(Path(run_dir))
    missing = [p.name for p in (run.results, run.recipe) if not p.is_file()]
    if missing:
        raise RunError(
            f"{run_dir}: not a finished run folder (no {', '.join(missing)}) → pass a run folder "
            "that 'domaintune train' completed"
        )
    try:
        results = json.loads(run.results.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunError(
            f"{run.results}: not valid JSON ({exc.msg}, line {exc.lineno}) → retrain the run"
        ) from None
    return run, results, run.recipe.read_text(encoding="utf-8")


def read_log(run: RunFolder) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (an unreadable line is skipped, not fatal)."""
    if not run.metrics.is_file():
        return []
    records = []
    for line in run.metrics.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """The single-number entries of a metrics dictionary."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def build_report(run_dir: str | Path) -> str:
    """The HTML text of a finished run's report."""
    import yaml

    from domaintune.evaluation.shift_format import format_shift
    from domaintune.reports import plots

    started = time.perf_counter()
    run, results, recipe_text = read_finished(run_dir)
    recipe = yaml.safe_load(recipe_text) or {}
    log = read_log(run)
    metric = results.get("metric", "")
    test, validation = results.get("test") or {}, results.get("validation") or {}
    evals = [r for r in log if r.get("event") == "eval"] or results.get("evaluations", [])
    figures: dict[str, str | None] = {
        "loss": plots.loss_curve([r for r in log if r.get("event") == "train"]),
        "metrics": plots.metric_curves(evals, metric),
        "confusion": None,
    }
    cm = test.get("confusion_matrix")
    if cm and cm.get("labels"):
        figures["confusion"] = plots.confusion_matrix(cm["labels"], cm["matrix"])
    shift = results.get("shift") or {}
    task_data = shift.get("task_data") or {}
    label_info = task_data.get("labels") or {}
    distribution = label_info.get("labels") or label_info.get("entities") or {}
    what = "entity" if label_info.get("kind") == "tags" else "label"
    figures["labels"] = plots.bar_chart(distribution, f"training {what} distribution")
    train = results.get("train") or {}
    context = {
        "title": run.root.resolve().name,
        "run_dir": str(run.root.resolve()),
        "task": (recipe.get("task") or {}).get("name", ""),
        "method": (recipe.get("method") or {}).get("name", ""),
        "model": results.get("model", ""),
        "metric": metric,
        "headline": test.get(metric),
        "test": scalars(test),
        "validation": scalars(validation),
        "per_label": test.get("per_label") or {},
        "per_type": test.get("per_type") or {},
        "scheme": test.get("scheme", ""),
        "figures": figures,
        "resources": _resources(train, results),
        "data": results.get("data") or {},
        "lengths": {k: task_data[k] for k in ("length_words", "length_tokens") if k in task_data},
        "distribution": distribution,
        "verdict": shift.get("verdict"),
        "shift_text": _shift_text(shift, format_shift),
        "forgetting": _forgetting(results.get("forgetting")),
        "forgetting_note": (results.get("forgetting") or {}).get("note"),
        "vocabulary": results.get("vocabulary"),
        "recipe": recipe_text,
        "evaluations": evals,
    }
    html = render("report.html.j2", **context)
    seconds = time.perf_counter() - started
    return html.replace("@@BUILD_SECONDS@@", f"{seconds:.2f}")


def write_report(run_dir: str | Path) -> Path:
    """Build ``report.html`` in the run folder (written atomically) and return its path."""
    html = build_report(run_dir)
    target = Path(run_dir) / REPORT_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    return target


def write_report_safely(run_dir: Path) -> Path | None:
    """Write the run report; a failure is logged as a warning and never fails the run."""
    try:
        return write_report(run_dir)
    except Exception as exc:  # a plot or template problem must not lose a finished training run
        logging.getLogger("domaintune").warning(
            "%s: report.html not written (%s: %s) → rebuild it with 'domaintune report %s'",
            run_dir,
            type(exc).__name__,
            exc,
            run_dir,
        )
        return None


def _resources(train: dict[str, Any], results: dict[str, Any]) -> list[tuple[str, Any]]:
    trainable, total = train.get("trainable_parameters"), train.get("total_parameters")
    share = f" ({trainable / total:.2%} of {total:,})" if trainable and total else ""
    rows: list[tuple[str, Any]] = [
        ("training time (s)", train.get("seconds")),
        ("optimizer steps", train.get("steps")),
        ("examples seen", train.get("examples_seen")),
        ("samples / s", train.get("samples_per_second")),
        ("tokens / s", train.get("tokens_per_second")),
        ("peak RSS (MiB)", results.get("peak_rss_mib")),
        ("precision", train.get("precision")),
        ("processes", train.get("processes")),
        ("trainable parameters", f"{trainable:,}{share}" if trainable is not None else None),
        ("best step", train.get("best_step")),
        ("stopped early", train.get("stopped_early")),
        ("objective", train.get("objective")),
    ]
    return [(k, v) for k, v in rows if v is not None]


def _forgetting(forgetting: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of the before/after perplexity table (language modelling)."""
    if not forgetting:
        return []
    return [
        {"name": name, **entry}
        for name, entry in forgetting.items()
        if isinstance(entry, dict) and "after" in entry
    ]


def _shift_text(shift: dict[str, Any], formatter: Any) -> str:
    """The terminal rendering of the shift analysis (the same as ``domaintune analyse``)."""
    if not shift or not shift.get("tokenizer"):
        return ""
    try:
        return str(formatter(shift))
    except (KeyError, TypeError, ValueError):  # an older or partial report: show the JSON
        return json.dumps(shift, indent=1, ensure_ascii=False)
