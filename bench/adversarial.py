"""Adversarial and domain-adversarial training on MiniLM, 3 seeds: test metric and training time.

Cases:

- ``fpb``: financial-phrasebank (``bench/recipes/foundation-fpb.yaml``: full fine-tuning with
  layer-wise LR decay 0.9, lr 1e-4, 3 epochs, batch 16), macro-F1: plain vs ``fgm`` vs ``pgd``
  at the BERT snippets' sizes, and at a quarter of them (``fgm-0.25``, ``pgd-0.25``: the
  objectives' defaults).
- ``ncbi``: ncbi-disease NER (``bench/recipes/methods-ncbi.yaml`` with full fine-tuning,
  lr 2e-4, 3 epochs, batch 16), entity F1: the same five arms.
- ``zh``: chnsenticorp-htl-zh (labelled source) -> waimai-10k-zh (target): source-only vs DANN,
  target test accuracy (waimai's test labels are used for nothing else) and source test
  accuracy. Both arms start from the same vocabulary-expanded MiniLM: per seed, one TAPT run
  (masked LM, ``expand_vocab: {min_count: 2}``, 1 epoch) on the unlabelled training text of
  both domains, then classification with ``model.init_from`` that run. Expanding from the
  source text alone would leave target-only characters at [UNK] (MiniLM maps about 74% of the
  Chinese characters of these reviews to [UNK]); unlabelled target text is what unsupervised
  adaptation is allowed to see. ``--zh-base plain`` runs both arms on the packaged MiniLM instead.
  Both arms are scored on the target test file by ``domaintune evaluate`` (the same code path,
  fp32), the source test split by the run itself; model selection is on the source dev split.

Perturbation sizes of the ``fgm`` / ``pgd`` arms: FGM epsilon 1.0; PGD epsilon 1.0, alpha 0.3,
3 steps (the objectives' defaults until these results moved them to the quarter-size arms'
values). The common setting for BERT-style models (FGM epsilon 1, PGD K=3, alpha 0.3, as
popularised by public NLP competition code); our L2 norm is per example over its real tokens
(Miyato et al. 2017; FreeLB), not over the whole batch's embedding-table gradient, so it is a
larger perturbation than those (whole-table) implementations make: about sqrt(batch size) = 4
times per example at batch 16, hence the quarter-size arms on both. DANN: weight 1, gamma 10,
mean pooling, domain classifier with 256 hidden units.

Runs live in ``bench/work/adversarial`` and are reused when their results exist (an interrupted
benchmark resumes); their ``results.json`` and ``eval-*.json`` are also kept in git under
``bench/results/runs/adversarial`` (``bench/archive.py``), so a finished run is not trained again
on another checkout; ``--jobs 2`` runs two trainings at once with one thread each (times are then
one-thread times). Merges its records into ``bench/results/objectives.json``, replacing only
the cases it ran. ``--smoke``: a few steps on tiny subsets, one seed, into a temporary folder.
Run: ``python bench/adversarial.py [--cases fpb ncbi zh] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive  # bench/archive.py: finished runs' report files, kept in git

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CLI = [sys.executable, "-m", "domaintune.cli"]
SEEDS = [42, 1, 2]

ARMS: dict[str, list[str]] = {
    "plain": [],
    "fgm": ['objectives=[{"name": "fgm", "epsilon": 1.0}]'],
    "pgd": ['objectives=[{"name": "pgd", "epsilon": 1.0, "alpha": 0.3, "steps": 3}]'],
    # The snippets' batch-level size per example: their epsilon spreads over the whole batch's
    # embedding gradient, about epsilon / sqrt(batch size) = 1 / sqrt(16) per example.
    "fgm-0.25": ['objectives=[{"name": "fgm", "epsilon": 0.25}]'],
    "pgd-0.25": ['objectives=[{"name": "pgd", "epsilon": 0.25, "alpha": 0.075, "steps": 3}]'],
}
CASES: dict[str, dict[str, Any]] = {
    "fpb": {
        "recipe": "bench/recipes/foundation-fpb.yaml",
        "metric": "f1_macro",
        "over": [],
    },
    "ncbi": {
        "recipe": "bench/recipes/methods-ncbi.yaml",
        "metric": "entity_f1",
        "over": ['method={"name": "full"}', "train.lr=2e-4"],
    },
}
ZH_SOURCE, ZH_TARGET = "chnsenticorp-htl-zh", "waimai-10k-zh"


class Bench:
    """Paths and run helpers of one benchmark invocation (real or smoke)."""

    def __init__(self, work: Path, results: Path, threads: int, smoke: bool) -> None:
        """Where runs and results go; smoke runs use tiny data subsets and a few steps."""
        self.work, self.results, self.threads, self.smoke = work, results, threads, smoke
        self.data = self._smoke_data() if smoke else DATA

    def _smoke_data(self) -> Path:
        """A spread sample of every file the benchmark reads (64 rows, 40 sentences)."""
        out = self.work / "data"
        for name in ("financial-phrasebank", "ncbi-disease", ZH_SOURCE, ZH_TARGET):
            for src in (DATA / name).iterdir():
                dst = out / name / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.suffix == ".conll":  # whole sentences: cut at the 40th blank line
                    blocks = src.read_text(encoding="utf-8").split("\n\n")[:40]
                    dst.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
                else:
                    lines = src.read_text(encoding="utf-8").splitlines()
                    lines = lines[:: max(1, len(lines) // 64)][:64]  # files may be sorted by label
                    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return out

    def data_overrides(self, name: str) -> list[str]:
        """Point a recipe's data at this invocation's copy of dataset ``name``."""
        ext = "conll" if name == "ncbi-disease" else "jsonl"
        return [
            f"data.{split}={self.data / name / f'{file}.{ext}'}"
            for split, file in (("train", "train"), ("validation", "dev"), ("test", "test"))
        ]

    def train(self, folder: Path, args: list[str]) -> dict[str, Any] | None:
        """``domaintune train ARGS -o FOLDER`` unless its results exist; None if it failed."""
        results = folder / "results.json"
        if not results.is_file() and not self.smoke:  # finished on an earlier checkout
            archive.restore("adversarial", self.work, folder, ["results.json"])
        if not results.is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            extra = [f"train.threads={self.threads}"]
            if self.smoke:
                extra += ["train.max_steps=6", "train.eval_every=3"]
            env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
            cmd = [*CLI, "train", *args, *extra, "-o", str(folder), "--overwrite"]
            with (folder.parent / f"{folder.name}.log").open("w") as log:
                done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
            print(f"  {folder.relative_to(self.work)}: rc {done.returncode}", flush=True)
            if done.returncode != 0:
                return None
            if not self.smoke:
                archive.keep("adversarial", self.work, folder, ["results.json"])
        return dict(json.loads(results.read_text()))

    def evaluate(self, folder: Path, data_file: Path) -> dict[str, Any] | None:
        """``domaintune evaluate FOLDER DATA_FILE`` (cached in ``eval-<stem>.json``)."""
        out = folder / f"eval-{data_file.stem}.json"
        if not out.is_file() and not self.smoke:  # finished on an earlier checkout
            archive.restore("adversarial", self.work, folder, [out.name])
        if not out.is_file():
            env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
            cmd = [*CLI, "evaluate", str(folder), "--data", str(data_file)]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(f"  evaluate {folder.name}: rc {done.returncode} {done.stderr[-300:]}")
                return None
            if not self.smoke:
                archive.keep("adversarial", self.work, folder, [out.name])
        return dict(json.loads(out.read_text()))


def adversarial_jobs(bench: Bench, case: str, seeds: list[int]) -> list[tuple[Path, list[str]]]:
    """One ``train`` job per (arm, seed) of a classification/NER case."""
    spec = CASES[case]
    name = "financial-phrasebank" if case == "fpb" else "ncbi-disease"
    return [
        (
            bench.work / case / arm / f"s{seed}",
            [
                spec["recipe"],
                *spec["over"],
                *bench.data_overrides(name),
                *ARMS[arm],
                f"train.seed={seed}",
            ],
        )
        for arm in ARMS
        for seed in seeds
    ]


def tapt_job(bench: Bench, seed: int) -> tuple[Path, list[str]]:
    """Vocabulary expansion + TAPT on the unlabelled training text of both domains."""
    text = bench.work / "zh" / "tapt-text.jsonl"
    if not text.is_file():
        text.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            json.dumps({"text": json.loads(line)["text"]}, ensure_ascii=False)
            for name in (ZH_SOURCE, ZH_TARGET)
            for line in (bench.data / name / "train.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        text.write_text("\n".join(rows) + "\n", encoding="utf-8")
    recipe = bench.work / "zh" / "tapt.yaml"
    recipe.write_text(
        json.dumps(  # JSON is YAML
            {
                "task": {"name": "language_modeling", "objective": "mlm"},
                "model": {"name": "minilm", "expand_vocab": {"min_count": 2}},
                "data": {
                    "train": str(text),
                    "test": str(bench.data / ZH_SOURCE / "dev.jsonl"),
                    "max_length": 128,
                    "split": {"validation": 0.0},
                },
                "method": {"name": "full"},
                "train": {"epochs": 1, "lr": 2e-4, "batch_size": 32, "warmup_ratio": 0.06},
            }
        ),
        encoding="utf-8",
    )
    return bench.work / "zh" / "tapt" / f"s{seed}", [str(recipe), f"train.seed={seed}"]


def zh_jobs(bench: Bench, seed: int, base: str) -> list[tuple[Path, list[str]]]:
    """Source-only and DANN classification runs of one seed (after its TAPT run)."""
    init = [] if base == "plain" else [f"model.init_from={bench.work / 'zh' / 'tapt' / f's{seed}'}"]
    common = [
        "domaintune/recipes/dann-zh-sentiment.yaml",
        *bench.data_overrides(ZH_SOURCE),
        *init,
        f"train.seed={seed}",
    ]
    dann = {
        "name": "dann",
        "target": str(bench.data / ZH_TARGET / "train.jsonl"),
        "test": str(bench.data / ZH_TARGET / "test.jsonl"),
    }
    return [
        (bench.work / "zh" / base / "source-only" / f"s{seed}", [*common, "objectives=[]"]),
        (
            bench.work / "zh" / base / "dann" / f"s{seed}",
            [*common, f"objectives=[{json.dumps(dann)}]"],
        ),
    ]


def stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def record(
    case: str,
    metric: str,
    ours: list[float],
    ref: list[float] | None,
    unit: str,
    seeds: list[int],
    command: str,
    higher: bool = True,
) -> dict[str, Any]:
    """One results record; ``ratio`` = how many times better ours is than the reference."""
    mean, std = stats(ours)
    ref_mean = stats(ref)[0] if ref else None
    ratio = None
    if ref_mean and mean:
        ratio = round(mean / ref_mean if higher else ref_mean / mean, 4)
    return {
        "case": case,
        "metric": metric,
        "ours": round(mean, 4),
        "reference": None if ref_mean is None else round(ref_mean, 4),
        "ratio": ratio,
        "unit": unit,
        "seeds": seeds,
        "command": command,
        "std": round(std, 4),
        "per_seed": [round(v, 4) for v in ours],
        **(
            {
                "reference_std": round(stats(ref)[1], 4),
                "reference_per_seed": [round(v, 4) for v in ref],
            }
            if ref
            else {}
        ),
    }


def adversarial_records(
    bench: Bench, case: str, seeds: list[int], machine: str
) -> list[dict[str, Any]]:
    """Test metric and training time of each arm; the reference is plain training."""
    metric = CASES[case]["metric"]
    found: dict[str, list[dict[str, Any]]] = {}
    for arm in ARMS:
        runs = [bench.work / case / arm / f"s{s}" / "results.json" for s in seeds]
        found[arm] = [json.loads(p.read_text()) for p in runs if p.is_file()]
    if len(found["plain"]) != len(seeds):
        return []
    # (metric name, where it sits in results.json, unit, higher is better); dev is what a user
    # could choose the knobs by (no test labels)
    measures = [
        (f"test_{metric}_mean", ("test", metric), "score", True),
        (f"dev_{metric}_mean", ("validation", metric), "score", True),
        ("train_seconds", ("train", "seconds"), "s", False),
    ]
    out = []
    for arm in ARMS:
        if len(found[arm]) != len(seeds):
            continue
        cmd = (
            f"python bench/adversarial.py --cases {case} ({CASES[case]['recipe']} "
            f"{' '.join(CASES[case]['over'] + ARMS[arm])}; reference: plain; {machine})"
        )
        for name, (section, key), unit, higher in measures:
            values = [r[section][key] for r in found[arm]]
            ref = None if arm == "plain" else [r[section][key] for r in found["plain"]]
            out.append(
                record(f"adv-{case}-{arm}", name, values, ref, unit, seeds, cmd, higher=higher)
            )
    return out


def zh_records(bench: Bench, seeds: list[int], base: str, machine: str) -> list[dict[str, Any]]:
    """Target and source test accuracy and training time: DANN against source-only."""
    target_test = bench.data / ZH_TARGET / "test.jsonl"
    arms: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for arm in ("source-only", "dann"):
        arms[arm] = []
        for seed in seeds:
            folder = bench.work / "zh" / base / arm / f"s{seed}"
            if (folder / "results.json").is_file():
                scores = bench.evaluate(folder, target_test)
                if scores is not None:
                    arms[arm].append((json.loads((folder / "results.json").read_text()), scores))
    if any(len(runs) != len(seeds) for runs in arms.values()):
        return []
    model = "vocabulary-expanded + TAPT (both domains' unlabelled train text) MiniLM"
    if base == "plain":
        model = "packaged MiniLM"
    cmd = (
        f"python bench/adversarial.py --cases zh --zh-base {base} (domaintune/recipes/"
        f"dann-zh-sentiment.yaml on the {model}; reference: the same recipe with objectives=[]; "
        f"target test scored by domaintune evaluate; {machine})"
    )
    case = f"dann-zh-{base}"
    src, dann = arms["source-only"], arms["dann"]
    return [
        # waimai's test set is 2:1 negative: accuracy alone rewards predicting negative
        *(
            record(
                case,
                f"target_test_{metric}_mean",
                [e[metric] for _, e in dann],
                [e[metric] for _, e in src],
                "score",
                seeds,
                cmd,
            )
            for metric in ("accuracy", "f1_macro")
        ),
        record(
            case,
            "source_test_accuracy_mean",
            [r["test"]["accuracy"] for r, _ in dann],
            [r["test"]["accuracy"] for r, _ in src],
            "score",
            seeds,
            cmd,
        ),
        record(
            case,
            "train_seconds",
            [r["train"]["seconds"] for r, _ in dann],
            [r["train"]["seconds"] for r, _ in src],
            "s",
            seeds,
            cmd,
            higher=False,
        ),
    ]


def merge(path: Path, new: list[dict[str, Any]]) -> None:
    """Replace the records of the cases in ``new``; keep every other record."""
    old = json.loads(path.read_text()) if path.is_file() else []
    cases = {r["case"] for r in new}
    kept = [r for r in old if r["case"] not in cases]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kept + new, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    """Run the cases (reusing finished runs), then merge the records into the results file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cases", nargs="+", default=["fpb", "ncbi", "zh"], choices=["fpb", "ncbi", "zh"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    parser.add_argument("--zh-base", choices=["tapt", "plain"], default="tapt")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (1 thread each)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny subsets, 6 steps, seed 42, temp folder"
    )
    parser.add_argument("--work", type=Path, help="with --smoke: reuse this folder's runs")
    args = parser.parse_args()
    threads = 1 if args.jobs > 1 else (os.cpu_count() or 1)
    if args.smoke:
        root = args.work or Path(tempfile.mkdtemp(prefix="bench-adversarial-"))
        bench = Bench(root / "work", root / "objectives.json", threads, smoke=True)
        seeds = args.seeds if args.seeds != SEEDS else [42]
    else:
        bench = Bench(
            ROOT / "bench" / "work" / "adversarial",
            ROOT / "bench" / "results" / "objectives.json",
            threads,
            smoke=False,
        )
        seeds = args.seeds
    sys.path.insert(0, str(ROOT / "bench"))
    from foundation import machine as describe  # the same wording as the other benchmarks

    machine = str(describe())

    def run_all(jobs: list[tuple[Path, list[str]]]) -> None:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(lambda job: bench.train(*job), jobs))

    jobs = [j for case in args.cases if case in CASES for j in adversarial_jobs(bench, case, seeds)]
    if "zh" in args.cases:
        if args.zh_base == "tapt":
            run_all([tapt_job(bench, seed) for seed in seeds])
        jobs += [j for seed in seeds for j in zh_jobs(bench, seed, args.zh_base)]
    run_all(jobs)
    new = [
        r
        for case in args.cases
        if case in CASES
        for r in adversarial_records(bench, case, seeds, machine)
    ]
    if "zh" in args.cases:
        new += zh_records(bench, seeds, args.zh_base, machine)
    merge(bench.results, new)
    for r in new:
        ref = (
            "" if r["reference"] is None else f"  (reference {r['reference']}, ratio {r['ratio']})"
        )
        print(f"{r['case']:22s} {r['metric']:28s} {r['ours']} ± {r['std']} {r['unit']}{ref}")
    print(f"wrote {len(new)} records to {bench.results}")


if __name__ == "__main__":
    main()
