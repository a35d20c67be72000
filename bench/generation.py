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

Case ``fewshot``: ``financial-phrasebank`` and ``nicta-piboso`` with ``data.few_shot`` k = 8 and
32 per class, 5 samplings (few_shot seeds 1-5, the same examples for every variant of a
sampling), test accuracy and macro-F1 on the whole test split:

* ``head``: plain fine-tuning of MiniLM with a classification head (the reference);
* ``prompt``: ``method: prompting`` fine-tuning MiniLM through the template (scoring ``auto``:
  similarity, as MiniLM has no MLM head);
* ``minilm-zero``: MiniLM zero-shot through the template (no training; once per dataset);
* ``smollm2-zero`` / ``smollm2-icl``: SmolLM2 zero-shot, and in-context with 2 demonstrations per
  label drawn from the sampling's k examples (k = 8 only: more demonstrations per label do not
  fit a 135M model's useful context, and each test sentence is scored with the whole prompt);
* ``smollm2-zero-bc`` / ``smollm2-icl-bc``: the same with batch calibration
  (``calibration_inputs: train``: the bias is the mean label probability of up to 32 training
  texts, their labels unused; in-context, the sampling's k examples other than the
  demonstrations; zero-shot, 32 texts of the whole training split).

Both MiniLM variants share the training settings of the shipped recipe
``prompting-few-shot.yaml`` (20 epochs, lr 1e-4, batch 8, evaluation every 30 steps on the dev
split, best dev macro-F1 kept).

Writes ``bench/results/generation.json`` (records ``{case, metric, ours, reference, ratio, unit,
seeds, command}``; sft: ours = after SFT, reference = before; fewshot: ours = the variant,
reference = ``head``). Runs live in ``bench/work/generation`` (not committed); every finished
run adds a line to the committed ledger ``bench/results/generation-runs.jsonl`` and is not run
again (``--fresh`` ignores the ledger). ``--smoke``: tiny data and few steps, into
``bench/work/generation/smoke``, nothing written to the results.
Run: ``python bench/generation.py --cases sft fewshot --jobs 2``.
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
import threading
from concurrent.futures import ThreadPoolExecutor
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


LEDGER = ROOT / "bench" / "results" / "generation-runs.jsonl"
LEDGER_LOCK = threading.Lock()
SHARED = ROOT.parent / "shared" / "data"
FEW_SHOT_DATA = {
    "fpb": ("financial-phrasebank", "{text} It was [MASK]."),
    "nicta": ("nicta-piboso", "{text} This sentence is about the [MASK]."),
}
# Variants run once per data set (no training data used) and the in-context ones (k = 8). The
# "-bc" variants calibrate by the mean probabilities of training texts (calibration_inputs:
# train, batch calibration) instead of content-free inputs.
ZERO_SHOT = ("minilm-zero", "smollm2-zero", "smollm2-zero-bc")
IN_CONTEXT = ("smollm2-icl", "smollm2-icl-bc")
FEW_SHOT_TRAIN = [
    "train.epochs=20",
    "train.lr=1e-4",
    "train.batch_size=8",
    "train.warmup_ratio=0.1",
    "train.eval_every=30",
    "eval.metric=f1_macro",
]


def ledger(fresh: bool) -> dict[str, dict[str, Any]]:
    """Finished runs of the committed ledger, by name (the last line of a name wins)."""
    if fresh or not LEDGER.is_file():
        return {}
    lines = [json.loads(x) for x in LEDGER.read_text().splitlines() if x.strip()]
    return {e["name"]: e for e in lines}


def few_shot_args(dataset: str, variant: str, k: int, sampling: int) -> list[str]:
    """Recipe and overrides of one few-shot run."""
    folder, template = FEW_SHOT_DATA[dataset]
    data = [
        f"data.{split}={SHARED / folder / f'{name}.jsonl'}"
        for split, name in (("train", "train"), ("validation", "dev"), ("test", "test"))
    ]
    common = ["task={name: classification}", *data, "data.max_length=128"]
    if variant == "head":
        return [
            "domaintune/recipes/prompting-few-shot.yaml",
            *common,
            "method={name: full}",
            f"data.few_shot={{k: {k}, seed: {sampling}}}",
            *FEW_SHOT_TRAIN,
        ]
    if variant == "prompt":
        method = f'method={{name: prompting, mode: finetune, template: "{template}"}}'
        return [
            "domaintune/recipes/prompting-few-shot.yaml",
            *common,
            method,
            f"data.few_shot={{k: {k}, seed: {sampling}}}",
            *FEW_SHOT_TRAIN,
        ]
    if variant == "minilm-zero":
        method = f'method={{name: prompting, mode: zero_shot, template: "{template}"}}'
        return [
            "domaintune/recipes/prompting-few-shot.yaml",
            *common,
            method,
            "data.few_shot=null",
            "eval.metric=f1_macro",
        ]
    # SmolLM2: the shipped in-context recipe's instruction, with this dataset's labels
    mode = "zero_shot" if variant.startswith("smollm2-zero") else "in_context"
    instruction = (
        "Classify the sentiment of the financial news sentence for investors as one of: {labels}."
        if dataset == "fpb"
        else "Classify the role of this sentence from a medical abstract as one of: {labels}."
    )
    batch = ", calibration_inputs: train" if variant.endswith("-bc") else ""
    method = (
        f"method={{name: prompting, mode: {mode}, demonstrations: 2, "
        f'instruction: "{instruction}", template: "Sentence: {{text}}"{batch}}}'
    )
    few = [f"data.few_shot={{k: {k}, seed: {sampling}}}"] if mode == "in_context" else []
    return [
        "domaintune/recipes/prompting-smollm2-in-context.yaml",
        *data,
        "data.max_length=1024",  # nicta's 12 demonstrations alone take 625 tokens
        method,
        *few,
        "eval.metric=f1_macro",
    ]


def few_shot_runs(k_values: list[int], samplings: list[int]) -> list[tuple[str, str, int, int]]:
    """Every (dataset, variant, k, sampling) of the few-shot case, in run order."""
    runs = []
    for dataset in FEW_SHOT_DATA:
        runs += [(dataset, v, 0, 0) for v in ZERO_SHOT]
        for k in k_values:
            for s in samplings:
                runs += [(dataset, "head", k, s), (dataset, "prompt", k, s)]
                if k == 8:
                    runs += [(dataset, v, k, s) for v in IN_CONTEXT]
    return runs


def few_shot_run(
    job: tuple[str, str, int, int], work: Path, threads: int, smoke: bool, fresh: bool
) -> dict[str, Any] | None:
    """Run one few-shot training/evaluation unless the ledger has it; its ledger entry."""
    dataset, variant, k, sampling = job
    name = f"fewshot/{dataset}/{variant}/k{k}-s{sampling}"
    known = ledger(fresh or smoke).get(name)
    if known is not None:
        return known
    folder = work / name
    args = few_shot_args(dataset, variant, k, sampling)
    if smoke:
        args += ["train.max_steps=3", "train.eval_every=3"]
    if not (folder / "results.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [
            *CLI,
            "train",
            *args,
            f"train.threads={threads}",
            f"train.seed={sampling or 42}",
            "-o",
            str(folder),
            "--overwrite",
        ]
        with folder.with_suffix(".log").open("w") as log:
            done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        print(f"  {name}: rc {done.returncode}", flush=True)
        if done.returncode != 0:
            return None
    results = json.loads((folder / "results.json").read_text())
    entry = {
        "name": name,
        "test": {m: results["test"][m] for m in ("accuracy", "f1_macro")},
        "validation": {m: results["validation"].get(m) for m in ("accuracy", "f1_macro")},
        "seconds": round(results["train"]["seconds"], 1),
        "threads": threads,
        "args": args,
    }
    if not smoke:
        with LEDGER_LOCK, LEDGER.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
    return entry


def few_shot_records(
    entries: dict[str, dict[str, Any]], samplings: list[int]
) -> list[dict[str, Any]]:
    """Records per dataset and k: each variant (mean over samplings) against ``head``."""
    from bench.foundation import machine

    out = []
    for dataset in FEW_SHOT_DATA:
        for k in (8, 32):

            def values(variant: str, metric: str, kk: int = k, ds: str = dataset) -> list[float]:
                names = (
                    [f"fewshot/{ds}/{variant}/k0-s0"]
                    if variant in ZERO_SHOT
                    else [f"fewshot/{ds}/{variant}/k{kk}-s{s}" for s in samplings]
                )
                return [entries[n]["test"][metric] for n in names if n in entries]

            for metric in ("accuracy", "f1_macro"):
                ref = values("head", metric)
                if not ref:
                    continue
                for variant in ("prompt", *ZERO_SHOT, *IN_CONTEXT):
                    ours = values(variant, metric)
                    if not ours or (variant in IN_CONTEXT and k != 8):
                        continue
                    out.append(
                        {
                            "case": f"fewshot-{dataset}-k{k}/{variant}",
                            "metric": f"test_{metric}",
                            "ours": round(statistics.mean(ours), 4),
                            "reference": round(statistics.mean(ref), 4),
                            "ratio": round(statistics.mean(ours) / statistics.mean(ref), 4),
                            "unit": "score",
                            "seeds": samplings,
                            "command": (
                                f"python bench/generation.py --cases fewshot (data.few_shot k={k}, "
                                f"samplings {samplings}; reference: plain head fine-tuning on the "
                                f"same k examples; {machine()})"
                            ),
                            "std": round(statistics.stdev(ours), 4) if len(ours) > 1 else 0.0,
                            "reference_std": round(statistics.stdev(ref), 4)
                            if len(ref) > 1
                            else 0.0,
                            "per_sampling": [round(v, 4) for v in ours],
                            "reference_per_sampling": [round(v, 4) for v in ref],
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
    parser.add_argument(
        "--cases", nargs="+", default=["sft", "fewshot"], choices=["sft", "fewshot"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--samplings", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--jobs", type=int, default=1, help="few-shot runs at once (1 thread each)")
    parser.add_argument("--fresh", action="store_true", help="ignore the committed ledger")
    parser.add_argument("--smoke", action="store_true", help="tiny data, a few steps, one seed")
    parser.add_argument(
        "--datasets", nargs="+", default=list(FEW_SHOT_DATA), choices=list(FEW_SHOT_DATA)
    )
    args = parser.parse_args()
    if "fewshot" in args.cases:
        samplings = [1] if args.smoke else args.samplings
        jobs = few_shot_runs([8] if args.smoke else [8, 32], samplings)
        jobs = [j for j in jobs if j[0] in args.datasets]  # its records: those data sets only
        if args.smoke:
            jobs = [j for j in jobs if j[0] == "fpb" and j[1] not in IN_CONTEXT]
        threads = 1 if args.jobs > 1 else args.threads
        work_fs = WORK / ("smoke" if args.smoke else "runs")
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            done = list(
                pool.map(lambda j: few_shot_run(j, work_fs, threads, args.smoke, args.fresh), jobs)
            )
        entries = {e["name"]: e for e in done if e is not None}
        fs_records = few_shot_records(entries, samplings)
        for r in fs_records:
            print(
                f"  {r['case']:34s} {r['metric']:14s} {r['ours']} ± {r['std']} vs head "
                f"{r['reference']} ± {r['reference_std']}"
            )
        if not args.smoke:
            merge(RESULTS, fs_records)
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
