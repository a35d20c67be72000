"""The HTTP prediction server (FastAPI + uvicorn) with dynamic batching of concurrent requests.

The caller (``deploy/service.py``) opens the model and passes a plain ``predict(texts) -> rows``
function and the metadata, so this module knows nothing of run or export folders. Concurrent
requests are queued and answered by one model call per batch, made in a single worker thread so
the event loop stays free and the model is never called from two threads at once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domaintune.errors import ConfigError

Predict = Callable[[list[str]], list[dict[str, Any]]]


@dataclass(frozen=True)
class ServeLimits:
    """Input limits and batching of the server."""

    max_batch_size: int = 32  # texts in one request, and texts in one model call
    max_text_length: int = 10_000  # characters in one text
    max_wait_ms: float = 0.0  # extra wait for more requests after draining the queue


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: one text or a batch of texts."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, description="One text.")
    texts: list[str] | None = Field(None, description="A batch of texts.")


class Batcher:
    """Collects concurrent requests for up to ``max_wait_ms`` or ``max_batch_size`` texts."""

    def __init__(self, predict: Predict, limits: ServeLimits) -> None:
        self.predict = predict
        self.limits = limits
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future[list[dict[str, Any]]]]] = (
            asyncio.Queue()
        )
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="domaintune-model")
        self.arrived = asyncio.Event()  # set whenever a request is queued
        self.batches = 0  # model calls so far (tests read it to see batching happen)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Stop the batching task and the model thread."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self.executor.shutdown(wait=False)

    async def submit(self, texts: list[str]) -> list[dict[str, Any]]:
        """Queue ``texts`` and wait for their predictions."""
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        self.arrived.set()
        return await future

    async def _work(self) -> None:
        """Batch what queued up while the model was busy, then wait up to ``max_wait_ms``.

        A lone request is answered at once after the queue is drained (no fixed delay at low
        load); under load, requests pile up while a batch runs and the next call takes them
        all, so batches grow with concurrency.
        """
        loop = asyncio.get_running_loop()
        carry: tuple[list[str], asyncio.Future[list[dict[str, Any]]]] | None = None
        while True:
            first = carry if carry is not None else await self.queue.get()
            carry = None
            items, count = [first], len(first[0])
            await asyncio.sleep(0)  # let requests already read by the server enqueue
            deadline = loop.time() + self.limits.max_wait_ms / 1000
            while count < self.limits.max_batch_size:
                self.arrived.clear()
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    # Waiting on the event (not on queue.get) so a timeout never loses an item.
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self.arrived.wait(), remaining)
                    continue
                if count + len(item[0]) > self.limits.max_batch_size:
                    carry = item  # it starts the next batch
                    break
                items.append(item)
                count += len(item[0])
            texts = [text for batch, _ in items for text in batch]
            try:
                rows = await loop.run_in_executor(self.executor, self.predict, texts)
                self.batches += 1
            except Exception as exc:  # each waiting request gets the error, the server lives on
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for batch, future in items:
                if not future.done():
                    future.set_result(rows[start : start + len(batch)])
                start += len(batch)


def create_app(predict: Predict, metadata: dict[str, Any], limits: ServeLimits) -> Any:
    """The FastAPI application: ``POST /predict``, ``GET /health``, ``GET /metadata``.

    Args:
        predict: Texts → one prediction dictionary per text (called in a worker thread).
        metadata: What ``GET /metadata`` returns (labels, model, method, metrics).
        limits: Input limits and batching.

    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
    except ImportError as exc:
        raise ConfigError(
            f"serve: {exc.name} is not installed → pip install 'domaintune[serve]' "
            "(fastapi and uvicorn)"
        ) from None

    batcher = Batcher(predict, limits)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="domaintune prediction server",
        description="Predictions of a domaintune run. Limits: "
        f"{limits.max_batch_size} texts per request, {limits.max_text_length} characters per "
        "text.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher

    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": message, **extra})

    # Refuse a body larger than any valid request before reading it (6 bytes: a \uXXXX escape).
    max_body = limits.max_batch_size * limits.max_text_length * 6 + 4096

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body:
            return error(
                413,
                f"body: {length} bytes exceed {max_body} (from max_batch_size × "
                "max_text_length) → send fewer or shorter texts",
                limit="max_body_bytes",
                value=max_body,
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return error(
            422,
            f'{where}: {first["msg"]} → send JSON like {{"texts": ["..."]}} or {{"text": "..."}}',
            detail=details,
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "batches": batcher.batches}

    @app.get("/metadata")
    async def get_metadata() -> dict[str, Any]:
        return {**metadata, "limits": asdict(limits)}

    @app.post("/predict", response_model=None)
    async def predict_endpoint(request: PredictRequest) -> Any:
        if (request.text is None) == (request.texts is None):
            return error(
                400,
                'body: give exactly one of "text" and "texts" → send {"text": "..."} or '
                '{"texts": ["...", ...]}',
            )
        single = request.text is not None
        texts = [request.text] if request.text is not None else list(request.texts or [])
        if not texts:
            return error(400, "texts: empty list → send at least one text")
        if len(texts) > limits.max_batch_size:
            return error(
                413,
                f"texts: {len(texts)} texts exceed max_batch_size {limits.max_batch_size} "
                "→ split the request",
                limit="max_batch_size",
                value=limits.max_batch_size,
            )
        for i, text in enumerate(texts):
            if len(text) > limits.max_text_length:
                return error(
                    413,
                    f"texts.{i}: {len(text)} characters exceed max_text_length "
                    f"{limits.max_text_length} → shorten or split the text",
                    limit="max_text_length",
                    value=limits.max_text_length,
                )
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate escape such as "\ud800"
                return error(
                    400,
                    f"texts.{i}: character {exc.start}: {text[exc.start]!r} is not valid "
                    "Unicode (a lone surrogate) → send UTF-8 text",
                )
        started = time.perf_counter()
        rows = await batcher.submit(texts)
        seconds = round(time.perf_counter() - started, 4)
        if single:
            return {"prediction": rows[0], "seconds": seconds}
        return {"predictions": rows, "seconds": seconds}

    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def run_server(app: Any, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError(
            "serve: uvicorn is not installed → pip install 'domaintune[serve]'"
        ) from None
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def start_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Any:
    """Start uvicorn in a daemon thread (tests, notebooks); returns the server (``should_exit``).

    The server's ``port`` attribute holds the port it listens on.
    """
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    server.port = port  # type: ignore[attr-defined]
    server.thread = thread  # type: ignore[attr-defined]
    return server
