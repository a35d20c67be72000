"""Batch prediction and int8 benchmark: ours (PyTorch, ONNX fp32, ONNX int8) against a plain
``transformers.pipeline(...)`` over the same test texts, side by side in one process.

Cases: ``fpb`` (financial-phrasebank sentiment, bench/recipes/foundation-fpb.yaml) and ``ncbi``
(ncbi-disease NER, softmax head, foundation-ncbi.yaml). For each case:

1. train the recipe into ``bench/work/deploy/<case>`` (reused when ``results.json`` exists;
   ``--max-steps`` shortens it for a smoke run);
2. export ``onnx`` and ``int8`` (and ``int8`` per channel with ``--per-channel``);
3. time every backend on the same texts (``--texts`` of the test split, ``--repeat`` passes,
   best pass kept), all with ``--threads`` threads: the pipeline (``batch_size`` 1, its default,
   and ``--pipeline-batch``), ``domaintune.predict_file`` on the run (PyTorch) and on each export
   (onnxruntime);
4. score the test split with PyTorch and with each export (metric change of int8 vs fp32), and
   record model sizes.

Writes ``bench/results/deploy.json`` (records ``{case, metric, ours, reference, ratio, unit}``).
Run: ``python bench/deploy.py --cases fpb ncbi`` (``--quick`` for a 30-second sanity check).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "work" / "deploy"
RESULTS = ROOT / "bench" / "results" / "deploy.json"
RECIPES = {"fpb": "foundation-fpb.yaml", "ncbi": "foundation-ncbi.yaml"}


def train(case: str, max_steps: int | None) -> Path:
    """The case's run folder, trained if needed."""
    from domaintune import api

    folder = WORK / case if max_steps is None else WORK / f"{case}-steps{max_steps}"
    if (folder / "results.json").is_file():
        return folder
    overrides = [f"train.max_steps={max_steps}"] if max_steps else []
    api.run(
        ROOT / "bench" / "recipes" / RECIPES[case], overrides, output_dir=folder, overwrite=True
    )
    return folder


def export(run: Path, fmt: str, per_channel: bool = False) -> tuple[Path, dict[str, Any]]:
    """Export once (reused when its export.json exists)."""
    from domaintune import api

    name = f"export-{fmt}" + ("-pc" if per_channel else "")
    out = run / name
    if (out / "export.json").is_file():
        return out, json.loads((out / "export.json").read_text())
    options = {"per_channel": per_channel} if fmt == "int8" else {}
    return out, api.export(run, fmt, out, overwrite=True, **options)


def texts_of(run: Path, limit: int) -> list[dict[str, Any]]:
    """Unlabelled test examples (texts; CoNLL sentences as tokens)."""
    from domaintune.data.stream import stream_split
    from domaintune.deploy.load import load_run

    loaded = load_run(run)
    examples = stream_split(loaded.data.test or "", loaded.data, loaded.task.kind)
    return list(islice(examples, limit))


def time_it(fn: Any, repeat: int) -> float:
    """Best wall time of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_case(case: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time and score one case; return its records."""
    import torch
    from transformers import pipeline

    from domaintune.deploy.load import load_run, open_predictor
    from domaintune.deploy.predict import predict_file, predict_outputs

    torch.set_num_threads(args.threads)
    run = train(case, args.max_steps)
    exports = {"onnx": export(run, "onnx"), "int8": export(run, "int8")}
    if args.per_channel:
        exports["int8-per-channel"] = export(run, "int8", per_channel=True)
    examples = texts_of(run, args.texts)
    texts = [e["text"] if "text" in e else " ".join(e["tokens"]) for e in examples]
    n = len(texts)
    tmp = Path(tempfile.mkdtemp())
    source = tmp / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    kind = "token-classification" if case == "ncbi" else "text-classification"
    extra = {"aggregation_strategy": "simple"} if case == "ncbi" else {}
    pipe = pipeline(kind, model=str(run / "final"), device="cpu", **extra)
    seconds: dict[str, float] = {}
    seconds["pipeline (batch 1)"] = time_it(lambda: pipe(texts), args.repeat)
    seconds[f"pipeline (batch {args.pipeline_batch})"] = time_it(
        lambda: pipe(texts, batch_size=args.pipeline_batch), args.repeat
    )
    sources = {"torch": (run, "torch")}
    sources.update({name: (folder, "onnx") for name, (folder, _) in exports.items()})
    for name, (folder, backend) in sources.items():
        predictor = open_predictor(folder, backend, threads=args.threads)
        seconds[f"ours {name}"] = time_it(
            lambda p=predictor: predict_file(p, source, tmp / "out.jsonl", progress=False),
            args.repeat,
        )
    # Test metric of each backend on the labelled test split.
    loaded = load_run(run)
    from domaintune.data.readers import read_split

    gold = read_split(loaded.data.test or "", loaded.data, loaded.task.kind)
    metric = json.loads((run / "results.json").read_text())["metric"]
    scores = {}
    for name, (folder, backend) in sources.items():
        predictor = open_predictor(folder, backend, threads=args.threads)
        examples_copy = [dict(e) for e in gold]
        outputs, encoded = predict_outputs(predictor, examples_copy)
        scores[name] = predictor.task.metrics(outputs, examples_copy, encoded=encoded)[metric]
    base = seconds["pipeline (batch 1)"]
    records = []
    for name, value in seconds.items():
        records.append(
            {
                "case": case,
                "metric": f"predict sentences/s: {name}",
                "ours": round(n / value, 1),
                "reference": round(n / base, 1),
                "ratio": round(base / value, 2),
                "unit": "sentences/s (reference: pipeline batch 1)",
            }
        )
    torch_s = seconds["ours torch"]
    for name in exports:
        records.append(
            {
                "case": case,
                "metric": f"{name} vs ours torch fp32: speed",
                "ours": round(n / seconds[f"ours {name}"], 1),
                "reference": round(n / torch_s, 1),
                "ratio": round(torch_s / seconds[f"ours {name}"], 2),
                "unit": "sentences/s",
            }
        )
        records.append(
            {
                "case": case,
                "metric": f"{name}: test {metric} (reference: torch fp32)",
                "ours": round(scores[name], 4),
                "reference": round(scores["torch"], 4),
                "ratio": round(scores[name] - scores["torch"], 4),
                "unit": f"{metric}; ratio = difference",
                "bytes": exports[name][1].get("bytes"),
                "fp32_bytes": exports[name][1].get("fp32_bytes"),
                "agreement": exports[name][1]["verification"]["label_agreement"],
            }
        )
    for record in records:
        record.update({"texts": n, "threads": args.threads, "max_steps": args.max_steps})
    return records


def main() -> None:
    """Parse arguments, run the cases and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["fpb", "ncbi"], choices=sorted(RECIPES))
    parser.add_argument("--texts", type=int, default=2000, help="test texts timed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pipeline-batch", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=None, help="shorter training (smoke)")
    parser.add_argument("--per-channel", action="store_true", help="also int8 per channel")
    parser.add_argument("--quick", action="store_true", help="256 texts, 1 pass, 30 steps")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.texts, args.repeat, args.max_steps = 256, 1, args.max_steps or 30
    records = [r for case in args.cases for r in bench_case(case, args)]
    for r in records:
        print(
            f"{r['case']:5s} {r['metric']:55s} {r['ours']:>9} {r['reference']:>9} {r['ratio']:>7}"
        )
    if not args.quick:
        args.output.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
