"""The run folder: resolved recipe, metrics.jsonl, checkpoints/, best/, final/, results.json."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domaintune.errors import RunError


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder."""

    root: Path

    @property
    def recipe(self) -> Path:
        """The fully resolved recipe; a run can be repeated from this file alone."""
        return self.root / "recipe.resolved.yaml"

    @property
    def metrics(self) -> Path:
        """One JSON object per line: training losses and evaluations."""
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        """Resumable training states (``step-N/``)."""
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        """Weights of the best evaluation so far."""
        return self.root / "best"

    @property
    def final(self) -> Path:
        """The final model: a plain transformers folder with tokenizer and task state."""
        return self.root / "final"

    @property
    def results(self) -> Path:
        """Test (and validation) metrics, timings and data statistics."""
        return self.root / "results.json"

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl."""
        with self.metrics.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def truncate_log(self, step: int) -> None:
        """Keep only the metrics.jsonl records up to ``step`` (used when resuming)."""
        if not self.metrics.is_file():
            return
        lines = self.metrics.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
        self.metrics.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def check_run_folder(path: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to reuse an existing run folder unless asked to resume or overwrite."""
    if resume and overwrite:
        raise RunError("--resume and --overwrite exclude each other → pick one")
    if path.exists() and any(path.iterdir()) and not (resume or overwrite):
        raise RunError(
            f"{path}: run folder exists → pass --resume to continue it, --overwrite to "
            "replace it, or set output_dir to a new folder"
        )
    if resume and not (path / "recipe.resolved.yaml").is_file():
        raise RunError(
            f"{path}: nothing to resume (no recipe.resolved.yaml) → run without --resume"
        )


def prepare_run_folder(path: Path, resume: bool, overwrite: bool) -> RunFolder:
    """Create (or, with ``overwrite``, empty) the run folder; ``resume`` keeps it as it is."""
    check_run_folder(path, resume, overwrite)
    if overwrite and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return RunFolder(path)


def open_run_folder(path: Path) -> RunFolder:
    """Open a finished run folder (for evaluate and predict)."""
    run = RunFolder(Path(path))
    if not (run.final / "domaintune.json").is_file():
        raise RunError(
            f"{path}: not a finished run folder (no final/domaintune.json) → train it "
            "first, or resume it with 'domaintune train RECIPE --resume'"
        )
    return run


def results_summary(run: RunFolder) -> dict[str, Any]:
    """The base model, the selection metric and the numeric test/validation metrics of a run.

    What an export keeps of ``results.json`` and what the server's ``/metadata`` shows; empty
    when the run has no ``results.json``.
    """
    if not run.results.is_file():
        return {}
    results = json.loads(run.results.read_text(encoding="utf-8"))

    def numbers(scores: dict[str, Any] | None) -> dict[str, Any]:
        return {
            k: v
            for k, v in (scores or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }

    return {
        "model": results.get("model"),
        "metric": results.get("metric"),
        "test": numbers(results.get("test")),
        "validation": numbers(results.get("validation")),
    }


def stage_summary(target: Path, results: dict[str, Any]) -> dict[str, Any]:
    """One pipeline stage in ``pipeline.json``: its folder, metric, test metrics and time."""
    keep = ("metric", "test", "forgetting", "vocabulary", "model")
    test = {k: v for k, v in results.get("test", {}).items() if isinstance(v, (int, float))}
    return {
        "run_dir": str(target),
        **{k: results[k] for k in keep if k in results and k != "test"},
        "test": test,
        "train_seconds": results.get("train", {}).get("seconds"),
    }


def write_run_state(
    run: RunFolder, recipe: Any, state: dict[str, Any], merged: bool
) -> dict[str, Any]:
    """Write ``final/domaintune.json``: what loading the final model needs besides its weights.

    The task and method configs, the task's state (labels, thresholds, CRF scores), the data
    options (cleaning, ``max_length``) and whether the method merged into ``final/``. With
    ``data.knowledge``, the triples file is copied into ``final/knowledge/`` and its hash kept.
    """
    run_state = {
        "method": {"config": recipe.method.model_dump(mode="json"), "merged": merged},
        "task": recipe.task.model_dump(mode="json"),
        "state": state,
        "data": recipe.data.model_dump(mode="json"),
        "eval_batch_size": recipe.train.eval_batch_size,
    }
    knowledge = getattr(recipe.data, "knowledge", None)
    if knowledge is not None:
        from domaintune.data.knowledge import save_knowledge

        run_state["knowledge"] = save_knowledge(knowledge, run.final)
    (run.final / "domaintune.json").write_text(json.dumps(run_state, indent=1), encoding="utf-8")
    return run_state
