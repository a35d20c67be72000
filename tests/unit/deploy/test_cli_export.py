"""``domaintune export`` and ``domaintune predict`` on export folders; one-line errors, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from domaintune import api
from domaintune.cli import app
from domaintune.config import load_recipe
from tests.conftest import recipe_dict, write_classification
from tests.unit.test_cli import _digest, _one_line_error

runner = CliRunner()


def test_export_then_predict_from_the_export(cls_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    result = runner.invoke(app, ["export", str(cls_run), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    out = cls_run / "export-onnx"
    assert json.loads((out / "export.json").read_text())["verification"]["passed"]
    assert "max abs logit difference" in result.output
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a good result"}\n{"text": "bad profit"}\n')
    target = tmp_path / "pred.csv"
    predicted = runner.invoke(app, ["predict", str(out), str(source), "-o", str(target)])
    assert predicted.exit_code == 0, predicted.output
    assert "onnx" in predicted.output
    assert target.read_text().splitlines()[0] == "text,label,probabilities"
    before = _digest(out)
    again = runner.invoke(app, ["export", str(cls_run), "--format", "onnx"])
    _one_line_error(again, "export-onnx", "--overwrite")
    assert _digest(out) == before  # an existing export is never touched
    wrong = runner.invoke(
        app,
        ["predict", str(out), str(source), "-o", str(tmp_path / "x.jsonl"), "--backend", "torch"],
    )
    _one_line_error(wrong, "--backend onnx")


def test_export_errors_are_one_line(cls_run: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["export", str(tmp_path / "nope"), "--format", "onnx"])
    _one_line_error(missing, "nope", "not a finished run folder")
    unknown = runner.invoke(app, ["export", str(cls_run), "--format", "tflite"])
    _one_line_error(unknown, "'tflite'", "safetensors, onnx, int8")
    inside = runner.invoke(app, ["export", str(cls_run), "-o", str(cls_run), "--overwrite"])
    _one_line_error(inside, "holds the run folder")
    assert (cls_run / "final").is_dir()
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    taken = runner.invoke(app, ["export", str(cls_run), "-o", str(existing)])
    _one_line_error(taken, "mine", "--overwrite")
    assert (existing / "notes.txt").read_text() == "keep me"
    badbackend = runner.invoke(
        app,
        [
            "predict",
            str(cls_run),
            str(existing / "notes.txt"),
            "-o",
            str(tmp_path / "p.jsonl"),
            "--backend",
            "tpu",
        ],
    )
    _one_line_error(badbackend, "'tpu'")


def test_methods_that_cannot_merge_refuse_safetensors(tiny_bert: Path, tmp_path: Path) -> None:
    data = write_classification(tmp_path / "data", n_train=16)
    recipe = {**recipe_dict(tiny_bert, data), "method": {"name": "adapter"}}
    run_dir = api.run(
        load_recipe(recipe, ["train.max_steps=2"]), output_dir=tmp_path / "run"
    ).run_dir
    refused = runner.invoke(app, ["export", str(run_dir), "--format", "safetensors"])
    _one_line_error(refused, "'adapter'", "--format onnx")
    assert not (run_dir / "export-safetensors").exists() or not any(
        (run_dir / "export-safetensors").iterdir()
    )


def test_language_model_runs_are_refused(tmp_path: Path) -> None:
    final = tmp_path / "lm" / "final"
    final.mkdir(parents=True)
    (final / "domaintune.json").write_text(json.dumps({"task": {"name": "language_modeling"}}))
    refused = runner.invoke(app, ["export", str(tmp_path / "lm"), "--format", "onnx"])
    _one_line_error(refused, "'language_modeling'", "classification")
