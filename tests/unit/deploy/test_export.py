"""Exports verify themselves, load with plain transformers or onnxruntime, predict like the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from domaintune import api
from domaintune.deploy import EXPORTERS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TEXTS = ["the patient has cancer and a severe fever", "good result", "no sign of tumor syndrome"]


def _probabilities(rows: list[dict]) -> np.ndarray:
    return np.array([list(r["probabilities"].values()) for r in rows])


def test_registry_lists_the_three_formats() -> None:
    assert set(EXPORTERS) == {"safetensors", "onnx", "int8"}
    assert all(callable(getattr(m, "export", None)) for m in EXPORTERS.values())


def test_safetensors_loads_with_plain_transformers(cls_run: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    report = api.export(cls_run, "safetensors", tmp_path / "st")
    assert report["verification"]["max_abs_diff"] == 0.0
    out = tmp_path / "st"
    assert (out / "model.safetensors").is_file()
    assert json.loads((out / "export.json").read_text())["format"] == "safetensors"
    card = (out / "README.md").read_text()
    assert "f1_macro" in card and "lora" in card and "train.jsonl" in card
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert list(model.config.id2label.values()) == ["negative", "positive"]
    rows = api.predict(cls_run, TEXTS)
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS[:1], return_tensors="pt")).logits
    np.testing.assert_allclose(
        torch.softmax(logits, -1)[0].numpy(), _probabilities(rows[:1])[0], atol=1e-5
    )


@pytest.mark.parametrize("fmt", ["onnx", "int8"])
def test_onnx_classification_matches_the_run(cls_run: Path, tmp_path: Path, fmt: str) -> None:
    from domaintune.deploy.load import open_predictor
    from domaintune.deploy.predict import predict_examples

    out = tmp_path / fmt
    report = api.export(cls_run, fmt, out)
    check = report["verification"]
    assert check["examples"] == 32
    if fmt == "onnx":
        assert check["max_abs_diff"] <= 1e-4 and check["passed"]
    else:
        assert report["bytes"] < report["fp32_bytes"]
        assert 0.0 <= check["label_agreement"] <= 1.0
    predictor = open_predictor(out)
    assert predictor.backend == "onnx"
    ours = predict_examples(predictor, [{"text": t} for t in TEXTS])
    theirs = api.predict(cls_run, TEXTS)
    assert [r["text"] for r in ours] == TEXTS
    atol = 1e-5 if fmt == "onnx" else 0.05
    np.testing.assert_allclose(_probabilities(ours), _probabilities(theirs), atol=atol)
    if fmt == "onnx":
        assert [r["label"] for r in ours] == [r["label"] for r in theirs]


def test_onnx_runs_with_plain_onnxruntime(cls_run: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    from transformers import AutoTokenizer

    api.export(cls_run, "onnx", tmp_path / "o")
    session = ort.InferenceSession(str(tmp_path / "o" / "model.onnx"))
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "o"))
    for batch in (TEXTS[:1], TEXTS):  # any batch size and length
        enc = tokenizer(batch, padding=True, return_tensors="np")
        names = [i.name for i in session.get_inputs()]
        logits = session.run(
            ["logits"], {k: v.astype(np.int64) for k, v in enc.items() if k in names}
        )[0]
        assert logits.shape == (len(batch), 2)
    info = json.loads((tmp_path / "o" / "domaintune.json").read_text())
    assert info["labels"] == ["negative", "positive"] and info["kind"] == "text"
    assert info["max_length"] == 64


@pytest.mark.parametrize("fmt", ["safetensors", "onnx", "int8"])
def test_ner_crf_exports_predict_like_the_run(ner_run: Path, tmp_path: Path, fmt: str) -> None:
    from domaintune.deploy.load import open_predictor
    from domaintune.deploy.predict import predict_examples

    out = tmp_path / fmt
    report = api.export(ner_run, fmt, out)
    info = json.loads((out / "domaintune.json").read_text())
    assert info["crf"] is not None and set(info["crf"]) == {"start", "end", "transitions"}
    assert "CRF" in (out / "README.md").read_text()
    if fmt != "int8":
        assert report["verification"]["max_abs_diff"] <= 1e-4
        ours = predict_examples(open_predictor(out), [{"text": t} for t in TEXTS])
        assert ours == api.predict(ner_run, TEXTS)
    else:
        print(fmt, report["verification"])  # tag agreement, reported
        assert report["verification"]["compared"] == "tags"
