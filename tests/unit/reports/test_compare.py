"""``domaintune compare``: differing recipe keys and main metrics, in the terminal and HTML."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from domaintune import api
from domaintune.cli import app
from domaintune.reports.compare import comparison_html, flatten

runner = CliRunner()


def test_flatten_gives_dotted_keys() -> None:
    tree = {"train": {"lr": 1e-3, "early_stopping": None}, "objectives": [{"name": "l2sp"}]}
    assert flatten(tree) == {
        "train.lr": 1e-3,
        "train.early_stopping": None,
        "objectives.0.name": "l2sp",
    }
    assert flatten({"eval": {"metrics": ["a", "b"]}}) == {"eval.metrics": ["a", "b"]}


def test_compare_lists_only_the_keys_that_differ(cls_runs: tuple[Path, Path]) -> None:
    comparison = api.compare(list(cls_runs))
    assert comparison.runs == ["lr-high", "lr-low"]
    assert comparison.differing == {"train.lr": ["0.001", "0.0002"]}
    assert "test f1_macro" in comparison.metrics
    assert comparison.metrics["steps"] == [8, 8]
    assert "trainable parameters" in comparison.metrics


def test_compare_runs_of_different_tasks(cls_runs: tuple[Path, Path], ner_run: Path) -> None:
    comparison = api.compare([cls_runs[0], ner_run])
    assert comparison.differing["task.name"] == ["classification", "token_classification"]
    assert comparison.metrics["test metric"][1].startswith("entity_f1 ")


def test_cli_compare_prints_and_writes_html(cls_runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    result = runner.invoke(
        app, ["compare", *map(str, cls_runs), "--html", str(out)], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    assert "train.lr" in result.stdout and "test f1_macro" in result.stdout
    html = out.read_text(encoding="utf-8")
    assert "<td>train.lr</td>" in html and "lr-low" in html
    assert "http" not in html.replace('lang="en"', "")
    again = runner.invoke(app, ["compare", *map(str, cls_runs), "--html", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.stderr


def test_compare_names_the_folder_that_is_not_a_run(
    cls_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    bogus = tmp_path / "not-a-run"
    bogus.mkdir()
    result = runner.invoke(app, ["compare", str(cls_runs[0]), str(bogus)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bogus) in lines[0] and "→" in lines[0]


def test_comparison_html_escapes(cls_runs: tuple[Path, Path]) -> None:
    comparison = api.compare(list(cls_runs))
    comparison.differing["<b>key</b>"] = ["<i>", "x"]
    html = comparison_html(comparison)
    assert "<b>key</b>" not in html and "&lt;b&gt;key&lt;/b&gt;" in html
