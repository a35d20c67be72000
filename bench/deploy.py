"""Deployment benchmark: batch prediction, exports and the HTTP server, side by side in one run.

Cases: ``fpb`` (financial-phrasebank sentiment, bench/recipes/foundation-fpb.yaml) and ``ncbi``
(ncbi-disease NER, softmax head, foundation-ncbi.yaml), MiniLM fully fine-tuned. For each case:

1. the trained run: the foundation benchmark's run of the same recipe when it exists
   (``bench/work/<case>/ours``), else trained into ``bench/work/deploy/<case>`` (``--max-steps``
   shortens it for a smoke run);
2. export ``safetensors`` (merged), ``onnx`` and ``int8``; each export verifies itself;
3. batch prediction sentences/s on the same test texts, every backend with ``--threads``
   threads, best of ``--repeat`` passes: the reference is a plain ``transformers.pipeline`` (batch
   1, its default; batch ``--pipeline-batch`` also reported); ours is ``domaintune predict``
   (``predict_file``: streaming, length-sorted batches, JSONL out) on PyTorch (``precision:
   auto``, bf16 autocast on a CPU with bf16 units, and fp32), ONNX fp32 and ONNX int8;
4. test metric of every backend on the labelled test split, and of the merged export loaded
   with plain transformers ``AutoModelFor*.from_pretrained`` (no domaintune code);
5. the server (``api.serving_app`` under uvicorn on loopback): requests/s and p50/p99 latency at
   1, 8 and 32 concurrent clients for ``--requests`` single-text requests, with dynamic batching
   against the same server without it (one model call per request); failures counted.

Writes ``bench/results/deploy.json``. Run: ``python bench/deploy.py`` (``--quick`` for a
smoke check).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
WORK = ROOT / "bench" / "work" / "deploy"
RESULTS = ROOT / "bench" / "results" / "deploy.json"
RECIPES = {"fpb": "foundation-fpb.yaml", "ncbi": "foundation-ncbi.yaml"}


def train(case: str, max_steps: int | None) -> Path:
    """The case's run folder: the foundation benchmark's run when present, else trained here."""
    from domaintune import api

    if max_steps is None:
        for folder in (WORK / case, ROOT / "bench" / "work" / case / "ours"):
            if (folder / "results.json").is_file():
                return folder
    folder = WORK / case if max_steps is None else WORK / f"{case}-steps{max_steps}"
    if (folder / "results.json").is_file():
        return folder
    overrides = [f"train.max_steps={max_steps}"] if max_steps else []
    api.run(
        ROOT / "bench" / "recipes" / RECIPES[case], overrides, output_dir=folder, overwrite=True
    )
    return folder


def export(run: Path, fmt: str, work: Path) -> tuple[Path, dict[str, Any]]:
    """Export once into ``work`` (reused when its export.json exists)."""
    from domaintune import api

    out = work / f"export-{fmt}"
    if (out / "export.json").is_file():
        return out, json.loads((out / "export.json").read_text())
    return out, api.export(run, fmt, out, overwrite=True)


def time_it(fn: Any, repeat: int) -> float:
    """Best wall time of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def plain_transformers_metric(folder: Path, gold: list[dict[str, Any]], metric: str) -> float:
    """Test metric of a merged export loaded with plain transformers (no domaintune code).

    Classification: macro F1 / accuracy of the argmax label; NER: strict IOB2 entity F1 of the
    first sub-token's tag of every word (seqeval), as domaintune scores its runs.
    """
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    tokenizer = AutoTokenizer.from_pretrained(folder)
    words = "tokens" in gold[0]
    auto = AutoModelForTokenClassification if words else AutoModelForSequenceClassification
    model = auto.from_pretrained(folder).eval()
    id2label = model.config.id2label
    predicted: list[Any] = []
    with torch.inference_mode():
        for i in range(0, len(gold), 64):
            chunk = gold[i : i + 64]
            inputs = tokenizer(
                [e["tokens"] if words else e["text"] for e in chunk],
                is_split_into_words=words,
                truncation=True,
                max_length=512,
                padding=True,
                return_tensors="pt",
            )
            logits = model(**inputs).logits.argmax(-1)
            for row, example in enumerate(chunk):
                if not words:
                    predicted.append(id2label[int(logits[row])])
                    continue
                tags = ["O"] * len(example["tokens"])
                seen = set()
                for position, word in enumerate(inputs.word_ids(row)):
                    if word is not None and word not in seen:
                        seen.add(word)
                        tags[word] = id2label[int(logits[row, position])]
                predicted.append(tags)
    if words:
        from seqeval.metrics import f1_score
        from seqeval.scheme import IOB2

        return float(f1_score([e["tags"] for e in gold], predicted, mode="strict", scheme=IOB2))
    from sklearn.metrics import accuracy_score
    from sklearn.metrics import f1_score as sk_f1

    truth = [e["label"] for e in gold]
    if metric == "accuracy":
        return float(accuracy_score(truth, predicted))
    return float(sk_f1(truth, predicted, average=metric.removeprefix("f1_")))


def free_port() -> int:
    """A TCP port nobody listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_load(run: Path, texts: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Requests/s and latency of ``domaintune serve``, with and without dynamic batching.

    Each configuration is its own ``domaintune serve`` process (as users run it), loaded by
    concurrent httpx clients from this process over loopback.
    """
    import subprocess

    import httpx
    from serve import _load  # bench/serve.py: the load generator

    rows = []
    modes = [
        ("batched", 32, args.max_wait_ms),
        ("batched, 5 ms wait", 32, 5.0),
        ("unbatched", 1, 0.0),
    ]
    for mode, batch, wait in modes:
        port = free_port()
        cli = [sys.executable, "-m", "domaintune.cli", "serve", str(run), "--port", str(port)]
        cli += ["--max-batch-size", str(batch), "--max-wait-ms", str(wait)]
        server = subprocess.Popen(cli, cwd=ROOT, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            asyncio.run(_load(url, texts, 4, 16))  # warm-up
            for clients in args.clients:
                before = httpx.get(f"{url}/health").json()["batches"]
                row = asyncio.run(_load(url, texts, clients, args.requests))
                row.update(
                    mode=mode, model_calls=httpx.get(f"{url}/health").json()["batches"] - before
                )
                rows.append(row)
                print("  server", json.dumps(row), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return rows


def bench_case(case: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time and score one case; return its records."""
    import torch
    from transformers import pipeline

    from domaintune.data.readers import read_split
    from domaintune.data.stream import stream_split
    from domaintune.deploy.load import load_run, open_predictor
    from domaintune.deploy.predict import predict_file, predict_outputs

    torch.set_num_threads(args.threads)
    run = train(case, args.max_steps)
    work = WORK / f"{case}-exports" if args.max_steps is None else WORK / f"{case}-quick"
    exports = {fmt: export(run, fmt, work) for fmt in ("safetensors", "onnx", "int8")}
    loaded = load_run(run)
    examples = list(
        islice(stream_split(loaded.data.test or "", loaded.data, loaded.task.kind), args.texts)
    )
    texts = [e["text"] if "text" in e else " ".join(e["tokens"]) for e in examples]
    n = len(texts)
    tmp = Path(tempfile.mkdtemp())
    source = tmp / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    kind = "token-classification" if case == "ncbi" else "text-classification"
    extra = {"aggregation_strategy": "simple"} if case == "ncbi" else {}
    pipe = pipeline(kind, model=str(run / "final"), device="cpu", **extra)
    seconds: dict[str, float] = {}
    seconds["pipeline batch 1"] = time_it(lambda: pipe(texts), args.repeat)
    seconds[f"pipeline batch {args.pipeline_batch}"] = time_it(
        lambda: pipe(texts, batch_size=args.pipeline_batch), args.repeat
    )
    backends = {
        "torch (precision auto)": (run, "torch", "auto"),
        "torch fp32": (run, "torch", "fp32"),
        "onnx fp32": (exports["onnx"][0], "onnx", "auto"),
        "onnx int8": (exports["int8"][0], "onnx", "auto"),
    }
    predictors = {
        name: open_predictor(folder, backend, threads=args.threads, precision=precision)
        for name, (folder, backend, precision) in backends.items()
    }
    for name, predictor in predictors.items():
        seconds[f"ours {name}"] = time_it(
            lambda p=predictor: predict_file(p, source, tmp / "out.jsonl", progress=False),
            args.repeat,
        )
        print(f"  {case} {name}: {n / seconds[f'ours {name}']:.1f} sentences/s", flush=True)
    print(f"  {case} pipeline batch 1: {n / seconds['pipeline batch 1']:.1f} sentences/s")
    # Test metric of each backend on the labelled test split.
    gold = read_split(loaded.data.test or "", loaded.data, loaded.task.kind)
    results = json.loads((run / "results.json").read_text())
    metric = results["metric"]
    scores = {}
    for name, predictor in predictors.items():
        copy = [dict(e) for e in gold]
        outputs, encoded = predict_outputs(predictor, copy)
        scores[name] = predictor.task.metrics(outputs, copy, encoded=encoded)[metric]
    scores["merged safetensors, plain transformers"] = plain_transformers_metric(
        exports["safetensors"][0], gold, metric
    )
    seeds = [int(results.get("train", {}).get("seed", 42))]
    command = (
        f"python bench/deploy.py --cases {case} --threads {args.threads} --texts {args.texts} "
        f"--repeat {args.repeat} (run: {run.relative_to(ROOT)}; {machine()})"
    )
    base = seconds["pipeline batch 1"]
    records: list[dict[str, Any]] = []

    def add(
        metric_name: str, ours: float, reference: float, ratio: float, unit: str, **extra: Any
    ) -> None:
        records.append(
            {
                "case": case,
                "metric": metric_name,
                "ours": ours,
                "reference": reference,
                "ratio": ratio,
                "unit": unit,
                "seeds": seeds,
                "command": command,
                **extra,
            }
        )

    for name, value in seconds.items():
        if name == "pipeline batch 1":
            continue
        add(
            f"predict sentences/s: {name} vs pipeline batch 1",
            round(n / value, 1),
            round(n / base, 1),
            round(base / value, 2),
            "sentences/s",
            texts=n,
            threads=args.threads,
        )
    torch_s = seconds["ours torch fp32"]
    for name in ("torch (precision auto)", "onnx fp32", "onnx int8"):
        add(
            f"predict sentences/s: {name} vs torch fp32",
            round(n / seconds[f"ours {name}"], 1),
            round(n / torch_s, 1),
            round(torch_s / seconds[f"ours {name}"], 2),
            "sentences/s",
            texts=n,
            threads=args.threads,
        )
    reported = results["test"][metric]
    for name, score in scores.items():
        add(
            f"test {metric}: {name} (reference: the run's own test score)",
            round(score, 4),
            round(reported, 4),
            round(score - reported, 4),
            f"{metric}; ratio = difference",
        )
    for fmt in ("onnx", "int8"):
        report = exports[fmt][1]
        add(
            f"{fmt} export: model size vs fp32 safetensors",
            report.get("bytes"),
            exports["safetensors"][1].get("bytes"),
            round(exports["safetensors"][1]["bytes"] / report["bytes"], 2),
            "bytes",
            verification=report.get("verification"),
        )
    if not args.no_server:
        server_texts = [e["text"] if "text" in e else " ".join(e["tokens"]) for e in examples]
        rows = serve_load(run, server_texts, args)
        for row in rows:
            if row["mode"] != "batched":
                continue
            plain = next(
                r for r in rows if r["mode"] == "unbatched" and r["clients"] == row["clients"]
            )
            add(
                f"server requests/s at {row['clients']} clients (reference: no dynamic batching)",
                row["requests_per_second"],
                plain["requests_per_second"],
                round(row["requests_per_second"] / plain["requests_per_second"], 2),
                "requests/s",
                p50_ms=row["p50_ms"],
                p99_ms=row["p99_ms"],
                failed=row["failed"],
                requests=row["requests"],
                model_calls=row["model_calls"],
                reference_p50_ms=plain["p50_ms"],
                reference_p99_ms=plain["p99_ms"],
                reference_failed=plain["failed"],
                max_wait_ms=args.max_wait_ms,
                with_5ms_wait=next(
                    {k: r[k] for k in ("requests_per_second", "p50_ms", "p99_ms", "failed")}
                    for r in rows
                    if r["mode"] == "batched, 5 ms wait" and r["clients"] == row["clients"]
                ),
            )
    return records


def machine() -> str:
    """The CPU facts (the same wording as the other benchmarks)."""
    from foundation import machine as describe

    return str(describe())


def main() -> None:
    """Parse arguments, run the cases and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["fpb", "ncbi"], choices=sorted(RECIPES))
    parser.add_argument("--texts", type=int, default=2000, help="test texts timed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pipeline-batch", type=int, default=32)
    parser.add_argument("--requests", type=int, default=320, help="requests per server load")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--max-wait-ms", type=float, default=0.0, help="server batching wait")
    parser.add_argument("--max-steps", type=int, default=None, help="shorter training (smoke)")
    parser.add_argument("--quick", action="store_true", help="128 texts, 1 pass, 30 steps")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.texts, args.repeat, args.max_steps, args.requests = 128, 1, args.max_steps or 30, 64
    records = [r for case in args.cases for r in bench_case(case, args)]
    for r in records:
        print(
            f"{r['case']:5s} {r['metric']:75s} {r['ours']!s:>10} {r['reference']!s:>10} "
            f"{r['ratio']!s:>7}"
        )
    if not args.quick:
        kept = []  # the records of cases not rerun stay
        if args.output.is_file():
            kept = [r for r in json.loads(args.output.read_text()) if r["case"] not in args.cases]
        args.output.write_text(json.dumps(kept + records, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
