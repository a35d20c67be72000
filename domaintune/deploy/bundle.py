"""What every export folder holds besides the model: tokenizer, task file, report, model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domaintune.data.knowledge import copy_saved_knowledge
from domaintune.deploy.card import model_card
from domaintune.deploy.load import RUN_FILE, LoadedRun, Predictor, from_run
from domaintune.deploy.verify import compare, sample_examples
from domaintune.errors import ModelError
from domaintune.runs import results_summary

REPORT_FILE = "export.json"
FP32_TOLERANCE = 1e-4


def write_bundle(loaded: LoadedRun, out_dir: Path, fmt: str) -> dict[str, Any]:
    """Tokenizer, model config (label map) and ``domaintune.json`` describing the task.

    ``domaintune.json`` keeps the run's own task file (task config, state with labels and CRF
    scores, data options) and adds ``format``, ``kind``, ``labels``, ``max_length``, ``crf`` and
    the run's ``results`` (base model, metric, test and validation metrics), so prediction and
    serving need nothing but this folder.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded.tokenizer.save_pretrained(str(out_dir))
    loaded.model.config.save_pretrained(str(out_dir))
    state = loaded.task.state()
    info = {
        **loaded.saved,
        "format": fmt,
        "kind": loaded.task.kind,
        "labels": state.get("labels", []),
        "max_length": loaded.data.max_length,
        "crf": state.get("crf"),
        "model_type": loaded.model.config.model_type,
        "source_run": str(loaded.run.root.resolve()),
        "results": results_summary(loaded.run),
    }
    (out_dir / RUN_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    copy_saved_knowledge(loaded.saved, loaded.run.final, out_dir)  # the graph travels along
    return info


def verify_and_report(
    loaded: LoadedRun,
    exported: Predictor,
    out_dir: Path,
    fmt: str,
    sample: str | Path | None,
    tolerance: float | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compare the export with the PyTorch model, write ``export.json`` and ``README.md``.

    Raises:
        ModelError: The logits differ by more than ``tolerance`` (the report is written first).

    """
    examples, origin = sample_examples(loaded, sample)
    verification = compare(from_run(loaded, "fp32"), exported, examples)
    verification["sample"] = origin
    verification["tolerance"] = tolerance
    verification["passed"] = tolerance is None or verification["max_abs_diff"] <= tolerance
    report = {
        "format": fmt,
        "run": str(loaded.run.root),
        "output": str(out_dir),
        "method": loaded.saved.get("method", {}).get("config", {}).get("name"),
        "task": loaded.saved.get("task", {}).get("name"),
        "verification": verification,
        **(extra or {}),
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(loaded, report), encoding="utf-8")
    if not verification["passed"]:
        raise ModelError(
            f"{out_dir / REPORT_FILE}: verification.max_abs_diff: "
            f"{verification['max_abs_diff']:.3g} > {tolerance} → the export does not match the "
            "PyTorch model; report it with export.json"
        )
    return report


def folder_size(path: Path) -> int:
    """Bytes of the model files in an export folder (weights and graphs)."""
    names = ("*.onnx", "*.onnx.data", "*.safetensors")
    return sum(f.stat().st_size for pattern in names for f in path.glob(pattern))
