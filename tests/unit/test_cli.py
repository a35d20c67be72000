"""End-to-end CLI on a tiny generated model, and the one-line user errors (exit code 2)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from domaintune.cli import app
from tests.conftest import recipe_dict

runner = CliRunner()


def _write(path: Path, recipe: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _one_line_error(result: object, *needles: str) -> str:
    code = getattr(result, "exit_code", getattr(result, "returncode", None))
    stderr = result.stderr  # type: ignore[attr-defined]
    assert code == 2, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    assert "→" in lines[0]  # every error carries its fix
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_train_evaluate_predict_ner(
    tiny_bert: Path, ner_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = _write(
        tmp_path / "ner.yaml",
        recipe_dict(tiny_bert, ner_data, "token_classification", epochs=3, lr=5e-3),
    )
    before = _digest(ner_data["train"].parent)
    run_dir = tmp_path / "runs" / "ner"
    result = runner.invoke(app, ["train", str(recipe), "-o", str(run_dir), "train.log_every=2"])
    assert result.exit_code == 0, result.output
    assert "entity_f1" in result.output and str(run_dir) in result.output
    for name in (
        "recipe.resolved.yaml",
        "metrics.jsonl",
        "results.json",
        "final/config.json",
        "final/model.safetensors",
        "final/tokenizer.json",
        "final/domaintune.json",
        "best/model.safetensors",
    ):
        assert (run_dir / name).is_file(), name
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test"]["entity_f1"] > 0.5  # the synthetic tags are easy to learn
    assert set(results["test"]["per_type"]) == {"Disease"}
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {e["event"] for e in events} == {"train", "eval"}
    # the resolved recipe alone repeats the run's configuration
    from domaintune.config import load_recipe

    assert load_recipe(run_dir / "recipe.resolved.yaml").train.lr == 5e-3

    evaluated = runner.invoke(app, ["evaluate", str(run_dir), "--data", str(ner_data["test"])])
    assert evaluated.exit_code == 0, evaluated.output
    saved = json.loads((run_dir / "eval-test.json").read_text())
    assert saved["entity_f1"] == pytest.approx(results["test"]["entity_f1"])

    texts = tmp_path / "in.txt"
    texts.write_text(
        "the patient has cancer and fever\nno sign of tumor syndrome\n", encoding="utf-8"
    )
    out = tmp_path / "out.jsonl"
    predicted = runner.invoke(app, ["predict", str(run_dir), str(texts), "-o", str(out)])
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        for entity in row["entities"]:
            assert row["text"][entity["start"] : entity["end"]] == entity["text"]
            assert entity["type"] == "Disease"
    assert any(e["text"] == "cancer" for e in rows[0]["entities"])
    again = runner.invoke(app, ["predict", str(run_dir), str(texts), "-o", str(out)])
    _one_line_error(again, str(out), "--overwrite")
    assert _digest(ner_data["train"].parent) == before  # the user's files are untouched


def test_train_and_predict_classification(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = _write(tmp_path / "cls.yaml", recipe_dict(tiny_bert, cls_data, epochs=4, lr=3e-3))
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", str(recipe), "-o", str(run_dir)])
    assert result.exit_code == 0, result.output
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test"]["accuracy"] >= 0.9
    assert results["test"]["confusion_matrix"]["labels"] == ["negative", "positive"]
    out = tmp_path / "pred.jsonl"
    assert (
        runner.invoke(
            app, ["predict", str(run_dir), str(cls_data["test"]), "-o", str(out)]
        ).exit_code
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 32
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    assert (
        sum(r["label"] == ("positive" if " good" in f" {r['text']}" else "negative") for r in rows)
        >= 29
    )


# ----------------------------------------------------------------------------- user errors
def test_typo_in_recipe_key(tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path) -> None:
    recipe = recipe_dict(tiny_bert, cls_data)
    recipe["train"]["lrr"] = 0.1  # type: ignore[index]
    path = _write(tmp_path / "r.yaml", recipe)
    done = subprocess.run(
        [sys.executable, "-m", "domaintune.cli", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    _one_line_error(done, str(path), "train.lrr", "'lr'")
    assert not (tmp_path / "runs").exists()


def test_missing_data_file(tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path) -> None:
    recipe = recipe_dict(tiny_bert, cls_data)
    recipe["data"]["train"] = str(tmp_path / "nope.jsonl")  # type: ignore[index]
    result = runner.invoke(
        app, ["train", _write(tmp_path / "r.yaml", recipe).as_posix(), "-o", str(tmp_path / "run")]
    )
    _one_line_error(result, "nope.jsonl", "not found")


def test_label_absent_from_train(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    dev = cls_data["dev"]
    lines = dev.read_text().splitlines()
    lines[3] = json.dumps({"text": "the market rose", "label": "neutral"})
    dev.write_text("\n".join(lines) + "\n")
    before = dev.read_bytes()
    result = runner.invoke(
        app,
        [
            "train",
            _write(tmp_path / "r.yaml", recipe_dict(tiny_bert, cls_data)).as_posix(),
            "-o",
            str(tmp_path / "run"),
        ],
    )
    _one_line_error(result, str(dev), "'neutral'", "example 4")
    assert dev.read_bytes() == before


def test_malformed_conll_line(tiny_bert: Path, ner_data: dict[str, Path], tmp_path: Path) -> None:
    train = ner_data["train"]
    lines = train.read_text().splitlines()
    lines[4] = "patient"  # tag column missing
    train.write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        app,
        [
            "train",
            _write(
                tmp_path / "r.yaml", recipe_dict(tiny_bert, ner_data, "token_classification")
            ).as_posix(),
            "-o",
            str(tmp_path / "run"),
        ],
    )
    _one_line_error(result, f"{train}:5", "'patient'")


def test_unknown_model_alias(cls_data: dict[str, Path], tmp_path: Path) -> None:
    recipe = recipe_dict(Path("minlm"), cls_data)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "domaintune.cli",
            "train",
            str(_write(tmp_path / "r.yaml", recipe)),
            "-o",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_line_error(done, "model.name", "'minlm'", "'minilm'")


def test_existing_run_folder_is_never_reused(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "precious.txt").write_text("keep me")
    result = runner.invoke(
        app,
        [
            "train",
            _write(tmp_path / "r.yaml", recipe_dict(tiny_bert, cls_data)).as_posix(),
            "-o",
            str(run_dir),
        ],
    )
    _one_line_error(result, str(run_dir), "--resume", "--overwrite")
    assert (run_dir / "precious.txt").read_text() == "keep me"


def test_validate_reports_every_error_at_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "r.yaml",
        {
            "task": {"name": "classification", "problm": 1},
            "data": {"train": "x.csv"},
            "train": {"lr": -1, "epochs": "many"},
            "method": {"name": "loar"},
        },
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from domaintune.cli import app\n"
            "try:\n    app(sys.argv[1:])\n"
            "except SystemExit as e:\n"
            "    assert 'torch' not in sys.modules, 'validate imported torch'\n"
            "    raise",
            "validate",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 4 and "Traceback" not in done.stderr
    assert all(line.count(str(path)) == 1 and "→" in line for line in lines)
    joined = "\n".join(lines)
    for needle in ("task.problm", "train.lr", "train.epochs", "method.name", "'problem'"):
        assert needle in joined


def test_recipes_list_and_copy(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["recipes", "list"])
    assert listed.exit_code == 0 and "ncbi-disease-ner" in listed.output
    target = tmp_path / "mine.yaml"
    assert runner.invoke(app, ["recipes", "copy", "ncbi-disease-ner", str(target)]).exit_code == 0
    assert target.read_text().startswith("#")
    again = runner.invoke(app, ["recipes", "copy", "ncbi-disease-ner", str(target)])
    _one_line_error(again, str(target), "exists")
    typo = runner.invoke(app, ["recipes", "copy", "ncbi-disease-nre"])
    _one_line_error(typo, "'ncbi-disease-ner'")
