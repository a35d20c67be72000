"""Sequential NER without forgetting: CoNLL-2003 → ncbi-disease on MiniLM, 3 seeds.

Stage 1 trains MiniLM on CoNLL-2003 (``bench/recipes/continual-conll.yaml``), once per seed.
Stage 2 starts from it (one head over the CoNLL and Disease tags: ``tasks/label_growth.py``)
and trains on ncbi-disease (``bench/recipes/continual-ncbi.yaml``) in five variants:

* ``plain``: sequential fine-tuning;
* ``ewc``: EWC with the Fisher of the stage-1 model on CoNLL train (1,000 sentences);
* ``l2sp``: L2-SP towards the stage-1 weights;
* ``replay``: 5% of CoNLL train mixed into ncbi's training split;
* ``distill``: LwF distillation from the stage-1 model (T = 2) on the ncbi batches.

Each variant is a two-stage pipeline with ``evaluate_earlier: true`` whose ``conll`` stage is a
link to the seed's stage-1 run (a finished stage is not re-run), so its ``pipeline.json`` holds
the forgetting matrix. Strength knobs are chosen with seed 42 on the DEV splits, never test:
among the grid points whose ncbi dev F1 is within 2 points of plain's, the one with the best
CoNLL dev F1 after stage 2 (else the best ncbi dev F1); the other seeds use that point.

GRID (variant → the knob's values): ewc weight 1e2..1e5 (the Fisher is per sentence, summed
over its words, so lambda is large), l2sp weight 0.01..1, distill weight 0.5..2; replay has
none (5%, as the issue states).

Reported per variant, mean ± std over seeds: CoNLL test F1 after stage 1 and after stage 2, the
drop, ncbi test F1, stage-2 training time; the forgetting matrices per seed; and whether the
issue's done-when holds (EWC, replay or distillation cuts plain's CoNLL drop by half or more
with ncbi test F1 within 2 points of plain). Records are merged into
``bench/results/objectives.json`` (cases ``continual-conll-ncbi/<variant>``).

Run: ``python bench/continual.py --jobs 2`` (runs kept in ``bench/work/continual`` and reused,
so an interrupted benchmark resumes; a finished variant's report files are also kept in git under
``bench/results/runs/continual`` by ``bench/archive.py``, so it resumes on another checkout, where
only the stage-1 models of seeds with unfinished variants are trained again). ``--smoke``: tiny
data subsets, a few steps, seed 42, one grid point each, everything in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive  # bench/archive.py: finished runs' report files, kept in git

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "continual"
RESULTS = ROOT / "bench" / "results" / "objectives.json"
CLI = [sys.executable, "-m", "domaintune.cli"]
SEEDS = [42, 1, 2]
CASE = "continual-conll-ncbi"
CONLL = ROOT.parent / "shared" / "data" / "conll2003"
NCBI = ROOT.parent / "shared" / "data" / "ncbi-disease"

# variant -> (knob values; a function of the value giving the stage-2 recipe changes)
GRID: dict[str, list[float]] = {
    "plain": [0.0],
    "ewc": [1e2, 1e3, 1e4, 1e5],
    "l2sp": [0.01, 0.1, 1.0],
    "replay": [0.05],
    "distill": [0.5, 1.0, 2.0],
}
DONE_WHEN = ("ewc", "replay", "distill")
# The files of a finished variant that the report reads (kept in git by bench/archive.py).
KEPT = [
    "pipeline.json",
    "ncbi/results.json",
    "ncbi/conll-dev.json",
]  # the variants the done-when names


def stage2_changes(variant: str, value: float, ewc_samples: int) -> dict[str, Any]:
    """What a variant adds to the stage-2 recipe."""
    if variant == "ewc":
        ewc = {"name": "ewc", "weight": value, "data": ["stage:conll"], "samples": ewc_samples}
        return {"objectives": [ewc]}
    if variant == "l2sp":
        return {"objectives": [{"name": "l2sp", "weight": value}]}
    if variant == "distill":
        return {"objectives": [{"name": "distill", "weight": value, "temperature": 2.0}]}
    if variant == "replay":
        return {"replay": {"files": ["stage:conll"], "fraction": value, "seed": 0}}
    return {}


class Bench:
    """Paths and settings of one benchmark invocation (real or smoke)."""

    def __init__(self, work: Path, data: dict[str, Path], smoke: bool, threads: int) -> None:
        """Remember where runs go, which data files and whether this is a smoke run."""
        self.work, self.data, self.smoke, self.threads = work, data, smoke, threads
        self.locks = {seed: threading.Lock() for seed in (*SEEDS, 42)}  # one stage-1 run a seed

    def recipe(self, name: str) -> dict[str, Any]:
        """A stage recipe with this invocation's data files (and tiny settings with --smoke)."""
        recipe = yaml.safe_load((ROOT / "bench" / "recipes" / f"continual-{name}.yaml").read_text())
        for split in ("train", "validation", "test"):
            recipe["data"][split] = str(self.data[f"{name}-{split}"])
        if self.smoke:
            recipe["data"]["max_length"] = 64
            recipe["train"].update({"epochs": 3, "max_steps": 40, "eval_every": 20})
        return recipe

    def stage1(self, seed: int) -> Path:
        """The seed's CoNLL run (trained once, shared by every variant)."""
        folder = self.work / f"conll-s{seed}"
        with self.locks.setdefault(seed, threading.Lock()):
            self.train_stage1(seed, folder)
        return folder

    def needs_stage1(self, seed: int) -> bool:
        """Whether the seed's plain variant still has to run (then every variant of it will)."""
        run = Path("plain-0") / f"s{seed}" / "pipeline.json"
        kept = not self.smoke and (archive.ARCHIVE / "continual" / run).is_file()
        return not (self.work / run).is_file() and not kept

    def train_stage1(self, seed: int, folder: Path) -> None:
        """Train the seed's CoNLL run unless its folder has a finished one."""
        if not (folder / "results.json").is_file():
            path = self.work / "pipelines" / f"conll-s{seed}.yaml"  # one file per job
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(self.recipe("conll")))
            resume = ["--resume"] if (folder / "recipe.resolved.yaml").is_file() else []
            self.call(
                ["train", str(path), *self.overrides(seed), "-o", str(folder), *resume], folder
            )  # a run cut off by a stopped session continues from its last checkpoint

    def overrides(self, seed: int) -> list[str]:
        """Seed and threads of every training."""
        return [f"train.seed={seed}", f"train.threads={self.threads}"]

    def variant(self, variant: str, value: float, seed: int) -> Path:
        """Run (or reuse) one stage-2 variant as a pipeline whose stage 1 is linked in.

        A finished variant's report files are kept in ``bench/results/runs/continual`` (not with
        ``--smoke``) and restored from there, so it is never trained again on another checkout.
        """
        folder = self.work / f"{variant}-{value:g}" / f"s{seed}"
        if (folder / "pipeline.json").is_file():
            return folder
        if not self.smoke and archive.restore("continual", self.work, folder, KEPT):
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "conll"
        if not link.exists():
            link.symlink_to(self.stage1(seed).resolve(), target_is_directory=True)
        second = self.recipe("ncbi")
        second["model"] = {"init_from": "stage:conll"}
        changes = stage2_changes(variant, value, 50 if self.smoke else 1000)
        if "replay" in changes:
            second["data"]["replay"] = changes.pop("replay")
        second.update(changes)
        pipeline = {
            "evaluate_earlier": True,
            "stages": [
                {"name": "conll", "recipe": self.recipe("conll")},
                {"name": "ncbi", "recipe": second},
            ],
        }
        path = self.work / "pipelines" / f"{variant}-{value:g}-s{seed}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(pipeline))
        self.call(
            ["train", str(path), *self.overrides(seed), "-o", str(folder), "--resume"], folder
        )
        dev = folder / "ncbi" / "conll-dev.json"
        if not dev.is_file():  # CoNLL dev after stage 2: the tuning signal for forgetting
            self.call(
                ["evaluate", str(folder / "ncbi"), "--data", str(self.data["conll-validation"])],
                folder,
            )
            (folder / "ncbi" / f"eval-{self.data['conll-validation'].stem}.json").rename(dev)
        if not self.smoke:
            archive.keep("continual", self.work, folder, KEPT)
        return folder

    def call(self, args: list[str], folder: Path) -> None:
        """Run one domaintune command with its log beside the run; fail loudly."""
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        with (folder.parent / f"{folder.name}.log").open("a") as log:
            done = subprocess.run(
                [*CLI, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        if done.returncode != 0:
            raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}; log: {log.name}")


def scores(folder: Path) -> dict[str, Any]:
    """One variant run's numbers: the forgetting matrix, dev scores and stage-2 time."""
    summary = json.loads((folder / "pipeline.json").read_text())
    matrix = summary["forgetting"]["matrix"]
    ncbi = json.loads((folder / "ncbi" / "results.json").read_text())
    return {
        "conll_after_1": matrix[0][0],
        "conll_after_2": matrix[1][0],
        "drop": round(matrix[0][0] - matrix[1][0], 6),
        "ncbi": matrix[1][1],
        "ncbi_dev": ncbi["validation"]["entity_f1"],
        "conll_dev_after_2": json.loads((folder / "ncbi" / "conll-dev.json").read_text())[
            "entity_f1"
        ],
        "seconds": ncbi["train"]["seconds"],
        "matrix": matrix,
        "average_forgetting": summary["forgetting"]["average_forgetting"],
    }


def choose(bench: Bench, variant: str, plain_dev: float) -> float:
    """The knob value picked on seed 42's dev splits (see the module docstring)."""
    rows = {v: scores(bench.variant(variant, v, 42)) for v in GRID[variant]}
    fine = {v: r for v, r in rows.items() if r["ncbi_dev"] >= plain_dev - 0.02}
    if fine:
        return max(fine, key=lambda v: fine[v]["conll_dev_after_2"])
    return max(rows, key=lambda v: rows[v]["ncbi_dev"])


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    """Train what is missing, pick the knobs on dev, report test numbers, merge the records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--variants", nargs="+", default=list(GRID), choices=list(GRID))
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (1 thread each)")
    parser.add_argument("--smoke", action="store_true", help="tiny data, few steps, temp folder")
    args = parser.parse_args()
    threads = 1 if args.jobs > 1 else (os.cpu_count() or 1)
    data = {
        f"{name}-{split}": folder / file
        for name, folder in (("conll", CONLL), ("ncbi", NCBI))
        for split, file in (
            ("train", "train.conll"),
            ("validation", "dev.conll"),
            ("test", "test.conll"),
        )
    }
    work, results = WORK, RESULTS
    if args.smoke:
        tmp = Path(tempfile.mkdtemp(prefix="continual-smoke-"))
        data = subsets(data, tmp / "data")
        work, results, args.seeds = tmp / "work", tmp / "objectives.json", [42]
        for variant in GRID:
            GRID[variant] = GRID[variant][:1]
    bench = Bench(work, data, args.smoke, threads)
    variants = ["plain", *[v for v in args.variants if v != "plain"]]
    with ThreadPoolExecutor(args.jobs) as pool:
        # The other seeds' stage-1 runs go alongside seed 42's grid (a variant waits for its
        # seed's stage 1 under that seed's lock), so no job slot idles while one stage 1 trains.
        first = [pool.submit(bench.stage1, s) for s in args.seeds if bench.needs_stage1(s)]
        grid = [pool.submit(bench.variant, v, x, 42) for v in variants for x in GRID[v]]
        for future in (*first, *grid):
            future.result()
        plain_dev = scores(bench.variant("plain", 0.0, 42))["ncbi_dev"]
        chosen = {v: choose(bench, v, plain_dev) for v in variants}
        jobs = [(v, chosen[v], s) for v in variants for s in args.seeds]
        list(pool.map(lambda job: bench.variant(*job), jobs))
    table = {v: [scores(bench.variant(v, chosen[v], s)) for s in args.seeds] for v in variants}
    report = summarise(table, chosen, args.seeds)
    print(
        f"{'variant':10} {'knob':>8} {'CoNLL@1':>15} {'CoNLL@2':>15} {'drop':>15} "
        f"{'ncbi':>15} {'seconds':>12}"
    )
    for variant, entry in report["summary"].items():
        cells = [
            f"{entry[k]['mean']:.4f}±{entry[k]['std']:.4f}"
            for k in ("conll_after_1", "conll_after_2", "drop", "ncbi")
        ]
        print(
            f"{variant:10} {entry['knob']:>8g} "
            + " ".join(f"{c:>15}" for c in cells)
            + f" {entry['seconds']['mean']:>12.1f}"
        )
        print(f"{'':10} forgetting matrices: {entry['matrices']}")
    print(report["done_when"]["statement"])
    merge(results, records(report, args.seeds, " --smoke" if args.smoke else ""))
    print(f"records merged into {results}")


def summarise(
    table: dict[str, list[dict[str, Any]]], chosen: dict[str, float], seeds: list[int]
) -> dict[str, Any]:
    """Mean ± std per variant and the done-when verdict."""
    summary: dict[str, Any] = {}
    for variant, rows in table.items():
        entry: dict[str, Any] = {"knob": chosen[variant], "seeds": seeds}
        for key in ("conll_after_1", "conll_after_2", "drop", "ncbi", "seconds"):
            mean, std = mean_std([r[key] for r in rows])
            entry[key] = {
                "mean": round(mean, 4),
                "std": round(std, 4),
                "per_seed": [r[key] for r in rows],
            }
        entry["matrices"] = {str(s): r["matrix"] for s, r in zip(seeds, rows, strict=True)}
        summary[variant] = entry
    plain = summary["plain"]
    passing = [
        v
        for v in DONE_WHEN
        if v in summary
        and plain["drop"]["mean"] > 0  # nothing to cut if plain does not forget
        and summary[v]["drop"]["mean"] <= 0.5 * plain["drop"]["mean"]
        and summary[v]["ncbi"]["mean"] >= plain["ncbi"]["mean"] - 0.02
    ]
    statement = (
        f"done-when {'HOLDS' if passing else 'does NOT hold'}: plain's CoNLL drop "
        f"{plain['drop']['mean']:.4f}; "
        + "; ".join(
            f"{v}: drop {summary[v]['drop']['mean']:.4f}, ncbi {summary[v]['ncbi']['mean']:.4f} "
            f"(plain {plain['ncbi']['mean']:.4f})"
            for v in DONE_WHEN
            if v in summary
        )
        + (f"; passing: {', '.join(passing)}" if passing else "")
    )
    return {
        "summary": summary,
        "done_when": {"holds": bool(passing), "passing": passing, "statement": statement},
    }


def records(report: dict[str, Any], seeds: list[int], flag: str) -> list[dict[str, Any]]:
    """Records for objectives.json: ratio = how many times better than plain sequential."""
    summary, out = report["summary"], []
    plain = summary["plain"]
    command = f"python bench/continual.py{flag}"
    for variant, entry in summary.items():
        for metric, key, unit, better in (
            ("conll_f1_drop", "drop", "F1", "lower"),
            ("conll_test_f1_after_stage2", "conll_after_2", "F1", "higher"),
            ("conll_test_f1_after_stage1", "conll_after_1", "F1", "higher"),
            ("ncbi_test_f1", "ncbi", "F1", "higher"),
            ("train_seconds", "seconds", "s", "lower"),
        ):
            ours, ref = entry[key]["mean"], plain[key]["mean"]
            ratio = (
                (ref / ours if ours else None)
                if better == "lower"
                else (ours / ref if ref else None)
            )
            record = {
                "case": f"{CASE}/{variant}",
                "metric": metric,
                "ours": ours,
                "reference": ref,
                "ratio": None if ratio is None else round(ratio, 4),
                "unit": unit,
                "seeds": seeds,
                "command": command,
                "std": entry[key]["std"],
                "per_seed": entry[key]["per_seed"],
                "knob": entry["knob"],
            }
            if metric == "conll_f1_drop":
                record["forgetting_matrices"] = entry["matrices"]
                record["done_when"] = report["done_when"]
            out.append(record)
    return out


def merge(path: Path, new: list[dict[str, Any]]) -> None:
    """Replace this benchmark's cases in the results file, keep every other record."""
    cases = {r["case"] for r in new}
    old = json.loads(path.read_text()) if path.is_file() else []
    kept = [r for r in old if r.get("case") not in cases]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kept + new, indent=1) + "\n")


def subsets(data: dict[str, Path], folder: Path) -> dict[str, Path]:
    """--smoke: the first sentences of each file (300 train, 60 dev/test)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, path in data.items():
        keep = 300 if key.endswith("train") else 60
        sentences = path.read_text(encoding="utf-8").split("\n\n")[:keep]
        target = folder / f"{key}.conll"
        target.write_text("\n\n".join(sentences).strip() + "\n", encoding="utf-8")
        out[key] = target
    return out


if __name__ == "__main__":
    main()
