"""Generation benchmark: SmolLM2 SFT on PubMed conclusions (before/after) and few-shot prompting.

Case ``sft``: SmolLM2-135M-Instruct (the packaged GGUF) with LoRA learns to write the concluding
sentence of a PubMed abstract. The instruction rows are built honestly from
``../shared/data/pubmed-abstracts``: each line there is one abstract, its ``CONTEXTS`` followed
by its ``LONG_ANSWER`` (the conclusion), so the line's **last sentence is always part of the
authors' conclusion**. The input is the abstract without that sentence (its last
``CONTEXT_WORDS`` words, so prompt and answer fit ``data.max_length``), the output is the
sentence. train.txt gives 800 training and 100 dev rows (a seeded shuffle), test.txt the 100
held-out test rows; abstracts whose split leaves fewer than 2 sentences are skipped (counted).

One run per seed (``bench/recipes/generation-pubmed.yaml``): ``task.evaluate_before`` scores the
untrained model first (a fresh LoRA update is zero, so that is the base model; greedy decoding,
so "before" is the same for every seed), then training, then the same test scoring. Reported:
ROUGE-1/2/L, BLEU, chrF on the 100 test abstracts, the test perplexity of the reference
conclusions, and perplexity on WikiText-2 (``data.reference_text``, 50k tokens) before and after
(what SFT did to general language), plus training time.

Writes ``bench/results/generation.json`` (records ``{case, metric, ours, reference, ratio, unit,
seeds, command}``; ours = after SFT, reference = before). Runs live in ``bench/work/generation``
and are reused when finished. ``--smoke``: 24 training rows, 4 steps, 4 test rows.
Run: ``python bench/generation.py --cases sft``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "work" / "generation"
RESULTS = ROOT / "bench" / "results" / "generation.json"
PUBMED = ROOT.parent / "shared" / "data" / "pubmed-abstracts"
RECIPE = "bench/recipes/generation-pubmed.yaml"
CLI = [sys.executable, "-m", "domaintune.cli"]
INSTRUCTION = "Write the concluding sentence of this biomedical abstract."
CONTEXT_WORDS = 220
# A sentence ends at . ! or ? followed by a space and an upper-case letter or digit; the
# abbreviations that end in a full stop inside PubMed sentences are not sentence ends.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
NOT_AN_END = ("e.g.", "i.e.", "et al.", "vs.", "Fig.", "No.", "approx.", "Dr.")


def sentences(text: str) -> list[str]:
    """Split an abstract into sentences (rejoining splits after common abbreviations)."""
    out: list[str] = []
    for piece in SENTENCE_END.split(text.strip()):
        if out and out[-1].endswith(NOT_AN_END):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def rows_of(path: Path) -> tuple[list[dict[str, str]], int]:
    """Instruction rows of an abstracts file, and how many abstracts were skipped."""
    rows, skipped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = sentences(line)
        if len(parts) < 3:
            skipped += 1
            continue
        words = " ".join(parts[:-1]).split()
        context = " ".join(words[-CONTEXT_WORDS:])
        if len(words) > CONTEXT_WORDS:
            context = "... " + context
        rows.append({"instruction": INSTRUCTION, "input": context, "output": parts[-1]})
    return rows, skipped


def build_data(folder: Path, smoke: bool) -> dict[str, Any]:
    """Write train/dev/test JSONL; return their sizes and the skipped counts."""
    train, skipped_train = rows_of(PUBMED / "train.txt")
    test, skipped_test = rows_of(PUBMED / "test.txt")
    random.Random(42).shuffle(train)
    splits = {"train": train[:-100], "dev": train[-100:], "test": test}
    if smoke:
        splits = {"train": splits["train"][:24], "dev": splits["dev"][:8], "test": test[:4]}
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return {
        "sizes": {k: len(v) for k, v in splits.items()},
        "skipped": {"train": skipped_train, "test": skipped_test},
    }


def train(seed: int, work: Path, data: Path, threads: int, smoke: bool) -> dict[str, Any]:
    """One SFT run (reused when its results exist)."""
    folder = work / f"sft-s{seed}"
    results = folder / "results.json"
    if not results.is_file():
        extra = []
        if smoke:
            extra = ["train.max_steps=4", "task.max_generate=4", "task.decoding.max_new_tokens=8"]
        cmd = [
            *CLI,
            "train",
            RECIPE,
            *(
                f"data.{s}={data / f'{n}.jsonl'}"
                for s, n in (("train", "train"), ("validation", "dev"), ("test", "test"))
            ),
            f"train.seed={seed}",
            f"train.threads={threads}",
            *extra,
            "-o",
            str(folder),
            "--overwrite",
        ]
        folder.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        with (work / f"sft-s{seed}.log").open("w") as log:
            done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        print(f"  sft seed {seed}: rc {done.returncode}", flush=True)
        if done.returncode != 0:
            raise SystemExit(f"SFT run failed; log: {work / f'sft-s{seed}.log'}")
    return json.loads(results.read_text())


METRICS = [
    ("rouge_l", "score", True),
    ("rouge1", "score", True),
    ("rouge2", "score", True),
    ("bleu", "score", True),
    ("chrf", "score", True),
    ("perplexity", "ppl", False),
]


def sft_records(runs: dict[int, dict[str, Any]], built: dict[str, Any]) -> list[dict[str, Any]]:
    """Records: test metrics after SFT (ours) against before (reference), general perplexity."""
    seeds = sorted(runs)
    from bench.foundation import machine

    cmd = (
        f"python bench/generation.py --cases sft ({RECIPE}; data built from pubmed-abstracts: "
        f"{built['sizes']}, skipped {built['skipped']}; test = 100 held-out abstracts; "
        f"{machine()})"
    )
    out = []

    def record(metric: str, after: list[float], before: float, unit: str, high: bool) -> None:
        mean = statistics.mean(after)
        out.append(
            {
                "case": "sft-smollm2-pubmed-conclusion",
                "metric": metric,
                "ours": round(mean, 4),
                "reference": round(before, 4),
                "ratio": round(mean / before if high else before / mean, 4) if before else None,
                "unit": unit,
                "seeds": seeds,
                "command": cmd,
                "std": round(statistics.stdev(after), 4) if len(after) > 1 else 0.0,
                "per_seed": [round(a, 4) for a in after],
            }
        )

    first = runs[seeds[0]]
    for name, unit, high in METRICS:
        before = first["before"]["test"].get(name)
        if before is not None:
            record(f"test_{name}", [runs[s]["test"][name] for s in seeds], before, unit, high)
    general = [runs[s]["forgetting"]["general"] for s in seeds]
    record(
        "general_perplexity_wikitext",
        [g["after"] for g in general],
        general[0]["before"],
        "ppl",
        False,
    )
    seconds = [runs[s]["train"]["seconds"] for s in seeds]
    out.append(
        {
            **out[-1],
            "metric": "train_seconds",
            "ours": round(statistics.mean(seconds), 1),
            "reference": None,
            "ratio": None,
            "unit": "s",
            "per_seed": [round(x, 1) for x in seconds],
            "std": round(statistics.stdev(seconds), 1) if len(seconds) > 1 else 0.0,
        }
    )
    return out


def merge(path: Path, new: list[dict[str, Any]]) -> None:
    """Replace the records of the cases in ``new``, keep the others."""
    cases = {r["case"] for r in new}
    old = json.loads(path.read_text()) if path.is_file() else []
    path.write_text(json.dumps([r for r in old if r["case"] not in cases] + new, indent=1) + "\n")


def main() -> None:
    """Build the data, run the seeds, write the records."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", default=["sft"], choices=["sft"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--smoke", action="store_true", help="tiny data, 4 steps, seed 42")
    args = parser.parse_args()
    work = WORK / ("smoke" if args.smoke else "runs")
    seeds = [42] if args.smoke else args.seeds
    if "sft" in args.cases:
        built = build_data(work / "data", args.smoke)
        print(f"data: {built}", flush=True)
        runs = {s: train(s, work, work / "data", args.threads, args.smoke) for s in seeds}
        records = sft_records(runs, built)
        for r in records:
            print(f"  {r['metric']:30s} after {r['ours']} ± {r['std']}  before {r['reference']}")
        if not args.smoke:
            merge(RESULTS, records)


if __name__ == "__main__":
    main()
