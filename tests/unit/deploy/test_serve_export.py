"""Serving an ONNX export folder over real HTTP on loopback: predictions, metadata, 4xx only."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
httpx = pytest.importorskip("httpx")

from domaintune import api  # noqa: E402
from domaintune.deploy.load import RUN_FILE, open_predictor  # noqa: E402
from domaintune.deploy.serve import start_in_thread  # noqa: E402
from domaintune.deploy.service import describe  # noqa: E402
from tests.unit.deploy.conftest import TEXTS  # noqa: E402


@pytest.fixture(scope="module")
def onnx_export(cls_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve-onnx") / "export"
    api.export(cls_run, "onnx", out)
    return out


@pytest.fixture(scope="module")
def url(onnx_export: Path) -> Iterator[str]:
    app = api.serving_app(
        onnx_export, threads=1, max_batch_size=8, max_text_length=200, max_wait_ms=5
    )
    running = start_in_thread(app)
    yield f"http://127.0.0.1:{running.port}"
    running.should_exit = True
    running.thread.join(timeout=10)


def test_metadata_of_an_onnx_export(url: str, onnx_export: Path, cls_run: Path) -> None:
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    meta = httpx.get(f"{url}/metadata").json()
    results = json.loads((cls_run / "results.json").read_text())
    assert meta["format"] == "onnx" and meta["backend"] == "onnx"
    assert meta["source"] == str(onnx_export.resolve()) and meta["run"] == str(cls_run.resolve())
    assert meta["labels"] == ["negative", "positive"] and meta["kind"] == "text"
    assert meta["task"] == "classification" and meta["method"] == "lora"
    assert meta["model"] == results["model"]
    assert meta["metric"] == "f1_macro"
    assert meta["test"]["f1_macro"] == results["test"]["f1_macro"]
    assert meta["verification"]["passed"] is True
    assert meta["limits"] == {"max_batch_size": 8, "max_text_length": 200, "max_wait_ms": 5}


def test_an_onnx_export_predicts_like_the_run(url: str, cls_run: Path, onnx_export: Path) -> None:
    expected = api.predict(cls_run, TEXTS)  # PyTorch, fp32
    one = httpx.post(f"{url}/predict", json={"text": TEXTS[0]})
    assert one.status_code == 200
    assert one.json()["prediction"]["label"] == expected[0]["label"]
    batch = httpx.post(f"{url}/predict", json={"texts": TEXTS})
    assert batch.status_code == 200
    rows = batch.json()["predictions"]
    assert rows == api.predict(onnx_export, TEXTS)  # the same predictor path
    assert [r["text"] for r in rows] == TEXTS
    for got, want in zip(rows, expected, strict=True):
        assert got["label"] == want["label"]
        for label, p in want["probabilities"].items():
            assert got["probabilities"][label] == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\t\n", "\x00", "😀 good", "血糖高", "good " * 40, "a" * 200, "\u200b\u202e"],
    ids=["empty", "spaces", "tab-newline", "nul", "emoji", "cjk", "over-max-len", "long", "bidi"],
)
def test_odd_texts_are_answered(url: str, text: str) -> None:
    response = httpx.post(f"{url}/predict", json={"texts": [text, "good"]})
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert len(rows) == 2 and rows[0]["text"] == text
    assert rows[0]["label"] in {"negative", "positive"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 422),
        (b"", 422),
        (b"null", 422),
        (b"[]", 422),
        (b'"a text"', 422),
        (b'{"texts": [1, 2]}', 422),
        (b'{"texts": [null]}', 422),
        (b'{"text": ["a"]}', 422),
        (b'{"texts": "not a list"}', 422),
        (b'{"txt": "typo"}', 422),
        (b'{"text": "\\ud800"}', 400),
        (b'{"texts": ["ok", "a\\udfff"]}', 400),
        (b"\xff\xfe", 422),
        (b"{}", 400),
        (b'{"text": null}', 400),
        (b'{"texts": []}', 400),
        (b'{"text": "a", "texts": ["b"]}', 400),
    ],
)
def test_malformed_bodies_are_4xx_json(url: str, body: bytes, status: int) -> None:
    response = httpx.post(
        f"{url}/predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert "→" in error and "\n" not in error


def test_oversized_inputs_are_413_json(url: str) -> None:
    many = httpx.post(f"{url}/predict", json={"texts": ["good"] * 9})
    assert many.status_code == 413 and many.json()["limit"] == "max_batch_size"
    long = httpx.post(f"{url}/predict", json={"text": "x" * 201})
    assert long.status_code == 413 and long.json()["limit"] == "max_text_length"
    assert "texts.0: 201 characters" in long.json()["error"]
    huge = httpx.post(f"{url}/predict", json={"texts": ["good " * 2000] * 8})
    assert huge.status_code == 413 and huge.json()["limit"] == "max_body_bytes"
    wrong = httpx.get(f"{url}/predict")
    assert wrong.status_code == 405


def test_metadata_of_an_export_without_results_reads_its_source_run(
    onnx_export: Path, cls_run: Path, tmp_path: Path
) -> None:
    """Exports written before domaintune.json kept the run's results fall back to the run."""
    older = tmp_path / "older"
    shutil.copytree(onnx_export, older)
    info = json.loads((older / RUN_FILE).read_text())
    del info["results"]
    (older / RUN_FILE).write_text(json.dumps(info))
    meta = describe(open_predictor(older, threads=1))
    results = json.loads((cls_run / "results.json").read_text())
    assert meta["model"] == results["model"] and meta["metric"] == results["metric"]
    assert meta["test"]["accuracy"] == results["test"]["accuracy"]


def test_serve_cli_errors_for_export_folders_are_one_line(onnx_export: Path, cls_run: Path) -> None:
    from typer.testing import CliRunner

    from domaintune.cli import app

    cases = [
        ([str(onnx_export), "--backend", "torch"], "holds no PyTorch weights"),
        ([str(cls_run), "--backend", "onnx"], "has no ONNX model"),
        ([str(onnx_export), "--backend", "tensorrt"], "--backend: 'tensorrt'"),
        ([str(onnx_export), "--max-batch-size", "0"], "--max-batch-size: 0"),
    ]
    for args, needle in cases:
        result = CliRunner().invoke(app, ["serve", *args, "--port", "1"])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "→" in lines[0], lines
