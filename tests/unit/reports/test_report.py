"""report.html: written by every run, self-contained, escaped, rebuilt by ``domaintune report``."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from domaintune.cli import app
from domaintune.errors import RunError
from domaintune.reports.html import REPORT_FILE, build_report, write_report

runner = CliRunner()
SECTIONS = ['id="metrics"', 'id="curves"', 'id="errors"', 'id="data"', 'id="resources"']


def _self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html


def test_every_run_writes_a_self_contained_report(cls_runs: tuple[Path, Path]) -> None:
    html = (cls_runs[0] / REPORT_FILE).read_text(encoding="utf-8")
    for section in [*SECTIONS, 'id="recipe"']:
        assert section in html
    # loss + lr curve, validation curves, confusion matrix, label distribution
    assert html.count('src="data:image/png;base64,') == 4
    _self_contained(html)
    assert "confusion matrix" in html and "per label (test)" in html
    assert "learning rate" in html
    assert "trainable parameters" in html and "peak RSS (MiB)" in html
    assert "domain shift:" in html
    assert "lr: 0.001" in html  # the resolved recipe


def test_ner_report_has_the_per_entity_type_table(ner_run: Path) -> None:
    html = (ner_run / REPORT_FILE).read_text(encoding="utf-8")
    assert "per entity type (test, IOB2 strict (seqeval))" in html
    assert "<td>Disease</td>" in html
    assert 'alt="confusion matrix"' not in html
    _self_contained(html)


def test_report_escapes_user_text(cls_runs: tuple[Path, Path], tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(cls_runs[0], copy)
    results = json.loads((copy / "results.json").read_text(encoding="utf-8"))
    evil = "<script>alert('x')</script>"
    results["model"] = evil
    results["data"]["labels"] = [evil, "b&c"]
    (copy / "results.json").write_text(json.dumps(results), encoding="utf-8")
    html = build_report(copy)
    assert evil not in html
    assert "&lt;script&gt;" in html and "b&amp;c" in html


def test_before_after_tables_when_present(cls_runs: tuple[Path, Path], tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(cls_runs[0], copy)
    results = json.loads((copy / "results.json").read_text(encoding="utf-8"))
    results["forgetting"] = {
        "in_domain": {"after": 12.5, "before": 40.0, "change": 0.3125, "text": "test split"},
        "general": {"after": 30.0, "before": 25.0, "change": 1.2, "text": "wiki.txt"},
    }
    results["vocabulary"] = {
        "added": 7,
        "examples": ["血糖", "tumour"],
        "before": {"unk_rate": 0.1, "pieces_per_word": 2.5},
        "after": {"unk_rate": 0.0, "pieces_per_word": 1.2},
        "init": {"from_pieces": 6, "random": 1},
    }
    (copy / "results.json").write_text(json.dumps(results), encoding="utf-8")
    html = build_report(copy)
    assert 'id="beforeafter"' in html
    assert "perplexity (forgetting)" in html and "wiki.txt" in html and "1.2" in html
    assert "vocabulary expansion: 7 tokens added" in html and "血糖" in html


def test_cli_report_rebuilds_it(cls_runs: tuple[Path, Path], tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(cls_runs[1], copy)
    (copy / REPORT_FILE).unlink()
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert (copy / REPORT_FILE).is_file()


def test_report_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not a finished run folder"):
        write_report(tmp_path)
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0] and "→" in lines[0]


def test_report_survives_a_log_without_train_records(
    cls_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(cls_runs[0], copy)
    (copy / "metrics.jsonl").write_text("not json\n", encoding="utf-8")
    html = build_report(copy)
    assert "No training-loss records" in html
    assert 'alt="validation metrics"' in html  # falls back to results.json's evaluations


def test_a_failing_report_does_not_fail_the_run(
    cls_runs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import domaintune.reports.html as report_html

    def broken(run_dir: object) -> str:
        raise ValueError("plot exploded")

    monkeypatch.setattr(report_html, "build_report", broken)
    with caplog.at_level(logging.WARNING, logger="domaintune"):
        assert report_html.write_report_safely(tmp_path) is None
    assert "report.html not written" in caplog.text and "plot exploded" in caplog.text
