"""Streaming batch prediction: input order kept over chunks, JSONL and CSV, equal to api.predict."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from domaintune import api
from domaintune.data.stream import stream_split
from domaintune.deploy.load import open_predictor
from domaintune.deploy.predict import predict_file
from domaintune.errors import ConfigError
from tests.conftest import WORDS


def _texts(n: int) -> list[str]:
    rng = random.Random(3)
    return [" ".join(rng.choice(WORDS[:30]) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def test_streaming_keeps_input_order_over_chunks(cls_run: Path, tmp_path: Path) -> None:
    texts = _texts(150)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    predictor = open_predictor(cls_run, precision="fp32")
    stats = predict_file(predictor, source, out, chunk_size=32, batch_size=8, progress=False)
    assert stats["examples"] == 150 and stats["backend"] == "torch"
    assert stats["precision"] == "fp32"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == texts
    expected = api.predict(cls_run, texts)
    assert [r["label"] for r in rows] == [r["label"] for r in expected]
    for ours, theirs in zip(rows, expected, strict=True):
        for label, p in theirs["probabilities"].items():
            assert ours["probabilities"][label] == pytest.approx(p, abs=1e-5)
    assert not out.with_name("out.jsonl.tmp").exists()


def test_csv_output_and_txt_input(cls_run: Path, tmp_path: Path) -> None:
    texts = _texts(20)
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n\n")
    out = tmp_path / "out.csv"
    api.predict_file(cls_run, source, out, progress=False)
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["text"] for r in rows] == texts
    assert set(json.loads(rows[0]["probabilities"])) == {"negative", "positive"}
    assert {r["label"] for r in rows} <= {"negative", "positive"}


def test_conll_input_streams_sentences(ner_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.conll"
    sentences = [["the", "patient", "has", "cancer"], ["a", "mild", "fever"], ["no"]]
    source.write_text("\n\n".join("\n".join(s) for s in sentences) + "\n")
    from domaintune.config.sections import DataConfig

    streamed = list(stream_split(source, DataConfig(train="x"), "tokens"))
    assert [e["tokens"] for e in streamed] == sentences
    out = tmp_path / "out.jsonl"
    api.predict_file(ner_run, source, out, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == api.predict(ner_run, source)
    assert [r["text"] for r in rows] == [" ".join(s) for s in sentences]


def test_stream_split_is_lazy(tmp_path: Path) -> None:
    from domaintune.config.sections import DataConfig

    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\n{"text": "b"}\nnot json\n')
    examples = stream_split(source, DataConfig(train="x"), "text")
    assert next(examples) == {"text": "a"}  # the bad line later has not been read yet
    assert next(examples) == {"text": "b"}
    with pytest.raises(Exception, match="invalid JSON"):
        next(examples)


def test_bf16_prediction_agrees_with_fp32(cls_run: Path) -> None:
    """``precision: auto`` predicts in bf16 autocast where the CPU has bf16 units."""
    from domaintune.deploy.load import use_bf16
    from domaintune.deploy.predict import predict_examples
    from domaintune.training.precision import cpu_has_bf16

    assert open_predictor(cls_run).precision == ("bf16" if cpu_has_bf16() else "fp32")
    if not cpu_has_bf16():
        with pytest.raises(ConfigError, match="no bf16 units"):
            use_bf16("bf16")
        pytest.skip("this CPU has no bf16 units")
    texts = [{"text": t} for t in _texts(64)]
    fp32 = predict_examples(open_predictor(cls_run, precision="fp32"), [dict(t) for t in texts])
    bf16 = predict_examples(open_predictor(cls_run, precision="bf16"), [dict(t) for t in texts])
    agree = sum(a["label"] == b["label"] for a, b in zip(fp32, bf16, strict=True))
    assert agree >= 62  # bf16 rounding may flip a near-tie; the bench measures test metrics
    for a, b in zip(fp32, bf16, strict=True):
        for label, p in a["probabilities"].items():
            assert b["probabilities"][label] == pytest.approx(p, abs=0.05)


def test_unknown_precision_is_one_clear_error(cls_run: Path) -> None:
    with pytest.raises(ConfigError, match=r"--precision: 'fp8'.*auto, fp32, bf16"):
        open_predictor(cls_run, precision="fp8")
