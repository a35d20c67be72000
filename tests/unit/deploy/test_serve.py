"""The HTTP server over real HTTP on loopback: predictions, batching, limits and 4xx errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from domaintune import api  # noqa: E402
from domaintune.config import load_recipe  # noqa: E402
from domaintune.deploy.serve import start_in_thread  # noqa: E402
from tests.conftest import recipe_dict, write_classification, write_conll  # noqa: E402
from tests.unit.deploy.conftest import TEXTS  # noqa: E402


@pytest.fixture(scope="module")
def cls_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-cls")
    recipe = load_recipe(
        recipe_dict(tiny_bert, write_classification(root / "data")), ["train.max_steps=8"]
    )
    return api.run(recipe, output_dir=root / "run").run_dir


@pytest.fixture(scope="module")
def server(cls_run: Path) -> Iterator[tuple[str, Any]]:
    # fp32: the tests compare with api.predict's fp32 scores (auto would use bf16 units).
    app = api.serving_app(
        cls_run, precision="fp32", max_batch_size=8, max_text_length=200, max_wait_ms=20
    )
    running = start_in_thread(app)
    yield f"http://127.0.0.1:{running.port}", app
    running.should_exit = True
    running.thread.join(timeout=10)


def test_health_and_metadata(server: tuple[str, Any]) -> None:
    url, _ = server
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    meta = httpx.get(f"{url}/metadata").json()
    assert meta["labels"] == ["negative", "positive"]
    assert meta["task"] == "classification" and meta["method"] == "full"
    assert meta["metric"] == "f1_macro" and "f1_macro" in meta["test"]
    assert meta["format"] == "run" and meta["backend"] == "torch" and meta["precision"] == "fp32"
    assert meta["limits"]["max_batch_size"] == 8
    assert httpx.get(f"{url}/openapi.json").status_code == 200


def test_single_text_and_batch_equal_api_predict(server: tuple[str, Any], cls_run: Path) -> None:
    url, _ = server
    expected = api.predict(cls_run, TEXTS)
    one = httpx.post(f"{url}/predict", json={"text": TEXTS[0]})
    assert one.status_code == 200
    assert one.json()["prediction"]["label"] == expected[0]["label"]
    batch = httpx.post(f"{url}/predict", json={"texts": TEXTS}).json()["predictions"]
    assert [r["label"] for r in batch] == [r["label"] for r in expected]
    for got, want in zip(batch, expected, strict=True):
        assert got["text"] == want["text"]
        for label, p in want["probabilities"].items():
            assert got["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_32_concurrent_requests_are_batched(server: tuple[str, Any], cls_run: Path) -> None:
    url, app = server
    texts = [TEXTS[i % len(TEXTS)] + f" {'good' if i % 3 else 'bad'}" for i in range(32)]
    expected = api.predict(cls_run, texts)
    before = app.state.batcher.batches

    async def fire() -> list[Any]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/predict", json={"text": t}) for t in texts))

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 32
    got = [r.json()["prediction"] for r in responses]
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    for g, e in zip(got, expected, strict=True):
        for label, p in e["probabilities"].items():
            assert g["probabilities"][label] == pytest.approx(p, abs=1e-5)
    calls = app.state.batcher.batches - before
    assert 4 <= calls < 32  # batches of at most 8 texts, several requests per model call


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 422, "JSON"),
        (b'{"texts": "not a list"}', 422, "texts"),
        (b'{"txt": "typo"}', 422, "txt"),
        (b'{"text": 3}', 422, "text"),
        (b"{}", 400, "exactly one"),
        (b'{"texts": []}', 400, "empty"),
        (b'{"text": "a", "texts": ["b"]}', 400, "exactly one"),
    ],
)
def test_malformed_input_is_a_4xx_json_error(
    server: tuple[str, Any], body: bytes, status: int, needle: str
) -> None:
    url, _ = server
    response = httpx.post(
        f"{url}/predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]


def test_limits_are_named_in_413_errors(server: tuple[str, Any]) -> None:
    url, _ = server
    many = httpx.post(f"{url}/predict", json={"texts": ["good"] * 9})
    assert many.status_code == 413
    assert many.json()["limit"] == "max_batch_size" and "max_batch_size 8" in many.json()["error"]
    long = httpx.post(f"{url}/predict", json={"texts": ["ok", "good " * 100]})
    assert long.status_code == 413
    assert long.json()["limit"] == "max_text_length" and "texts.1" in long.json()["error"]


def test_a_body_larger_than_any_valid_request_is_refused_unread(server: tuple[str, Any]) -> None:
    url, _ = server
    response = httpx.post(f"{url}/predict", json={"text": "good " * 4000})
    assert response.status_code == 413
    assert response.json()["limit"] == "max_body_bytes"


def test_token_classification_serves_entities(tiny_bert: Path, tmp_path: Path) -> None:
    recipe = load_recipe(
        recipe_dict(tiny_bert, write_conll(tmp_path / "data"), task="token_classification"),
        ["train.max_steps=4"],
    )
    run_dir = api.run(recipe, output_dir=tmp_path / "run").run_dir
    running = start_in_thread(api.serving_app(run_dir, precision="fp32"))
    try:
        text = "the patient has diabetes syndrome"
        got = httpx.post(f"http://127.0.0.1:{running.port}/predict", json={"text": text})
        assert got.status_code == 200
        assert got.json()["prediction"] == api.predict(run_dir, [text])[0]
    finally:
        running.should_exit = True
        running.thread.join(timeout=10)


def test_serving_a_folder_that_is_not_a_run_is_a_one_line_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from domaintune.cli import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--port", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a finished run folder" in lines[0] and "→" in lines[0]
