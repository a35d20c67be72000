"""What ``domaintune serve`` serves: a predictor's predictions and metadata, within checked limits.

A run folder or an export folder is opened once as a :class:`~domaintune.deploy.load.Predictor`
(PyTorch or onnxruntime); the server (``deploy/serve.py``) gets a plain ``predict(texts) -> rows``
function over :func:`~domaintune.deploy.predict.predict_examples`, the same path as batch
prediction, and the metadata of :func:`describe`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domaintune.deploy.load import Predictor
from domaintune.deploy.predict import check_predicts, predict_examples
from domaintune.deploy.serve import ServeLimits, create_app
from domaintune.errors import ConfigError
from domaintune.runs import RunFolder, results_summary

EXPORT_REPORT = "export.json"  # an export's own report (deploy/bundle.py writes it)


def serve_limits(max_batch_size: int, max_text_length: int, max_wait_ms: float) -> ServeLimits:
    """The server's limits, each checked (a one-line error naming the option)."""
    for name, value in (("max_batch_size", max_batch_size), ("max_text_length", max_text_length)):
        if value < 1:
            raise ConfigError(f"serve: --{name.replace('_', '-')}: {value}: must be ≥ 1 → raise it")
    return ServeLimits(max_batch_size, max_text_length, max_wait_ms)


def describe(predictor: Predictor) -> dict[str, Any]:
    """What ``GET /metadata`` answers: what is served, the task, labels, model and metrics.

    The metrics are the run's (PyTorch) test and validation scores: a run folder's
    ``results.json``, or the copy an export keeps in its ``domaintune.json`` (for exports
    written before it kept one, the source run's ``results.json`` when it is still there). An
    export also shows its ``export.json`` verification against the PyTorch model.
    """
    saved = predictor.saved
    fmt = saved.get("format")
    run_root: Path | None = predictor.source if fmt is None else None
    if fmt is not None and saved.get("source_run"):
        run_root = Path(saved["source_run"])
    results = saved.get("results") if fmt is not None else None
    if results is None and run_root is not None:
        results = results_summary(RunFolder(run_root))
    results = results or {}
    metadata: dict[str, Any] = {
        "source": str(predictor.source.resolve()),
        "format": fmt or "run",
        "backend": predictor.backend,
        "precision": predictor.precision,
        "run": str(run_root.resolve()) if run_root is not None else None,
        "task": (saved.get("task") or {}).get("name"),
        "kind": predictor.task.kind,
        "labels": predictor.task.state().get("labels"),
        "model": results.get("model"),
        "method": ((saved.get("method") or {}).get("config") or {}).get("name"),
        "metric": results.get("metric"),
        "test": results.get("test", {}),
        "validation": results.get("validation", {}),
        "max_length": predictor.data.max_length,
    }
    report = predictor.source / EXPORT_REPORT
    if fmt is not None and report.is_file():
        check = json.loads(report.read_text(encoding="utf-8")).get("verification", {})
        keep = ("examples", "max_abs_diff", "compared", "label_agreement", "passed")
        metadata["verification"] = {k: check[k] for k in keep if k in check}
    return metadata


def predictor_app(predictor: Predictor, limits: ServeLimits) -> Any:
    """The FastAPI app answering ``POST /predict`` with ``predictor`` (see ``deploy/serve.py``)."""
    check_predicts(predictor)

    def predict(texts: list[str]) -> list[dict[str, Any]]:
        return predict_examples(predictor, [{"text": text} for text in texts])

    return create_app(predict, describe(predictor), limits)
