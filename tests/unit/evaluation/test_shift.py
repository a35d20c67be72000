"""Domain-shift analysis on tiny generated models and text: report, verdict, task data, CLI."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from domaintune.cli import app
from domaintune.evaluation.shift import (
    analyse_files,
    analyse_shift,
    compare_vocabulary,
    format_shift,
    shift_verdict,
)
from domaintune.evaluation.task_data import describe_task_data
from domaintune.evaluation.words import sample_texts, split_words
from tests.conftest import WORDS

runner = CliRunner()


def _texts(n: int, seed: int, words: list[str] | None = None) -> list[str]:
    rng = random.Random(seed)
    pool = words or WORDS[:30]
    return [" ".join(rng.choice(pool) for _ in range(rng.randint(4, 12))) for _ in range(n)]


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_in_vocabulary_text_is_low_shift(tiny_bert: Path) -> None:
    report = analyse_shift(_texts(60, 0), _tokenizer(tiny_bert), reference_texts=_texts(400, 1))
    assert set(report) >= {"vocabulary", "tokenizer", "perplexity", "task_data", "verdict"}
    assert report["perplexity"] is None and report["task_data"] is None
    assert report["tokenizer"]["domain"]["unk_rate"] == 0.0
    assert report["vocabulary"]["jaccard"] == pytest.approx(1.0)
    assert report["vocabulary"]["unseen_ratio"] < 1.25
    assert report["verdict"]["level"] == "low", report["verdict"]
    assert report["verdict"]["reasons"] == []
    json.dumps(report)  # JSON-serialisable
    assert "verdict: LOW shift" in format_shift(report)


def test_unknown_characters_make_a_high_shift(tiny_bert: Path) -> None:
    greek = ["αβγ", "δεζ", "ηθι", "κλμ", "patient"]
    report = analyse_shift(
        _texts(40, 0, greek), _tokenizer(tiny_bert), reference_texts=_texts(400, 1)
    )
    verdict = report["verdict"]
    assert report["tokenizer"]["domain"]["unk_rate"] > 0.5
    assert verdict["level"] == "high"
    assert "model.expand_vocab" in verdict["summary"]
    assert any(reason.startswith("tokenizer:") for reason in verdict["reasons"])
    assert report["vocabulary"]["unseen_ratio"] > 1.5


def test_verdict_thresholds() -> None:
    tok = {
        "unk_rate": 0.0,
        "unk_char_rate": 0.0,
        "unk_char_occurrence_rate": 0.0,
        "unk_chars": 0,
        "chars": 30,
        "pieces_per_word": 1.1,
        "fragmented_word_rate": 0.05,
    }

    def level(**parts: Any) -> dict[str, Any]:
        return shift_verdict({"tokenizer": {"domain": tok, "reference": tok}, **parts})

    def ppl(ratio: float) -> dict[str, Any]:
        return {
            "domain": {"perplexity": 10 * ratio},
            "reference": {"perplexity": 10.0},
            "ratio": ratio,
        }

    assert level()["level"] == "low"
    high = level(perplexity=ppl(2.5))
    assert high["level"] == "high" and "consider DAPT" in high["summary"]
    assert "expand_vocab" not in high["summary"]
    assert level(perplexity=ppl(1.5))["level"] == "moderate"
    vocab = {"unseen_ratio": 1.3, "occurrence_coverage": 0.8, "type_coverage": 0.5}
    assert level(vocabulary=vocab)["level"] == "moderate"
    # Rare unknown symbols (many distinct, almost no occurrences) do not raise the level.
    rare = {**tok, "unk_char_rate": 0.2, "unk_chars": 6, "unk_char_occurrence_rate": 1e-5}
    assert shift_verdict({"tokenizer": {"domain": rare, "reference": None}})["level"] == "low"


def test_compare_vocabulary_finds_domain_words() -> None:
    reference = _texts(400, 1, ["the", "market", "rose", "and", "fell"])
    domain = _texts(40, 2, ["the", "tumor", "and", "syndrome"])
    vocab = compare_vocabulary(domain, reference)
    top = [w["word"] for w in vocab["over_represented"]]
    assert set(top[:2]) == {"syndrome", "tumor"}
    assert vocab["type_coverage"] == pytest.approx(0.5)
    assert 0 < vocab["occurrence_coverage"] < 1
    assert vocab["unseen_ratio"] > 1.5


def test_split_words_and_sampling() -> None:
    assert split_words("The patient's IL-6 rose 3 times.") == [
        "the",
        "patient's",
        "il",
        "rose",
        "times",
    ]
    chinese = split_words("这个酒店很好，服务不错！")
    assert "酒店" in chinese and "，" not in chinese and "！" not in chinese
    texts = [f"t{i}" for i in range(100)] + ["  "]
    sample = sample_texts(texts, 10, seed=3)
    assert len(sample) == 10 and sample == sorted(sample, key=texts.index)
    assert sample == sample_texts(texts, 10, seed=3)


def test_task_data_labels_and_lengths(tiny_bert: Path) -> None:
    examples = [
        {"text": " ".join(["patient"] * n), "label": lab}
        for n, lab in [(2, "a"), (4, "a"), (6, "b"), (200, "a")]
    ]
    task = describe_task_data(examples, _tokenizer(tiny_bert))
    assert task["size"] == 4
    assert task["labels"]["labels"] == {"a": 3, "b": 1}
    assert task["labels"]["shares"] == {"a": 0.75, "b": 0.25}
    words, tokens = task["length_words"], task["length_tokens"]
    assert words["max"] == 200 and words["median"] == 5.0 and words["mean"] == 53.0
    assert tokens["max"] == 202 and tokens["median"] == 7.0  # [CLS] ... [SEP]
    assert tokens["over_128"] == 0.25 and tokens["over_256"] == 0.0
    assert tokens["p95"] == pytest.approx(202 - 0.15 * (202 - 8))
    assert task["advice"][0].startswith("p95 length 172 tokens: set data.max_length ≥ 256")


def test_task_data_entities(tiny_bert: Path) -> None:
    examples = [
        {
            "tokens": ["tumor", "syndrome", "and", "fever"],
            "tags": ["B-Disease", "I-Disease", "O", "B-Disease"],
        },
        {"tokens": ["the", "company"], "tags": ["O", "B-Org"]},
        {"tokens": ["the", "patient"], "tags": ["O", "O"]},
    ]
    labels = describe_task_data(examples, _tokenizer(tiny_bert))["labels"]
    assert labels["entities"] == {"Disease": 2, "Org": 1}
    assert labels["entity_shares"]["Disease"] == pytest.approx(0.6667)
    assert labels["examples_with_entity"] == pytest.approx(0.6667)


def test_perplexity_skipped_without_lm_head_measured_with_one(
    tiny_bert: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    domain = _write_lines(tmp_path / "domain.txt", _texts(20, 0))
    reference = _write_lines(tmp_path / "reference.txt", _texts(20, 1))
    skipped = analyse_files(domain, reference, str(tiny_bert))["perplexity"]
    assert "no pretrained LM head" in skipped["skipped"]
    ppl = analyse_files(domain, reference, str(tiny_llama), max_ppl_tokens=512)["perplexity"]
    assert ppl["objective"] == "clm"
    assert math.isfinite(ppl["ratio"]) and ppl["domain"]["targets"] > 0
    assert "perplexity (clm)" in format_shift(analyse_files(domain, None, str(tiny_llama)))


def test_cli_end_to_end_and_refuses_to_overwrite(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    domain = _write_lines(tmp_path / "domain.txt", _texts(30, 0))
    reference = _write_lines(tmp_path / "reference.txt", _texts(30, 1))
    out = tmp_path / "report.json"
    args = ["analyse", str(domain), "--reference", str(reference), "--model", str(tiny_bert)]
    args += ["--task-data", str(cls_data["train"]), "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "verdict: LOW shift" in result.output and "task data (96 examples" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["task_data"]["labels"]["labels"] == {"negative": 48, "positive": 48}
    assert report["files"]["domain"] == str(domain) and report["model"] == str(tiny_bert)

    before = out.read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 2
    lines = [line for line in again.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--overwrite" in lines[0]
    assert out.read_bytes() == before
    assert runner.invoke(app, [*args, "--overwrite", "--no-perplexity"]).exit_code == 0


def test_cli_missing_file_is_one_line_error(tiny_bert: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyse", str(tmp_path / "nope.txt"), "--model", str(tiny_bert)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: ") and "→" in result.stderr
    assert "Traceback" not in result.stderr
