"""Multi-task benchmark: nicta-piboso + ncbi-disease on one MiniLM encoder vs single-task models.

The multi-task recipe is ``bench/recipes/multitask-nicta-ncbi.yaml``: its two task sections and its
train section are those of ``methods-nicta.yaml`` and ``methods-ncbi.yaml`` (checked at start),
full fine-tuning, 3 epochs, batch 16, proportional sampling, selection on the dev ``tasks_mean``
(mean of nicta accuracy and ncbi entity F1).

1. **shared learning rate**: the single-task runs are best at 5e-5 (nicta; the method
   comparison's pick since its 2026-12-06 re-measure, 1e-4 before) and 2e-4 (ncbi); the
   multi-task run takes whichever of 5e-5, 1e-4 and 2e-4 gives the best dev ``tasks_mean``
   with seed 42 (the test splits are not looked at);
2. **seeds**: the multi-task run at that rate with seeds 42, 1, 2;
3. **reference**: single-task full fine-tuning, nicta at 5e-5 and ncbi at 2e-4, same seeds. The
   method comparison's runs (``bench/work/methods/{nicta,ncbi}/full``) are reused when their
   resolved recipe is the one this script would run; otherwise they are trained here.

Reports nicta test accuracy and ncbi test entity F1 (mean ± std over seeds) for both, and the
training time: the multi-task run against the two single-task runs it replaces, together. Runs
are ``domaintune train`` subprocesses, kept in ``bench/work/multitask`` and reused when their
``results.json`` exists (an interrupted benchmark resumes; that file is also kept in git under
``bench/results/runs/multitask`` by ``bench/archive.py``, so it resumes on another checkout);
``--jobs 2`` runs two at once with one thread each, as ``bench/methods.py`` did for the
reference runs. Records replace this script's cases in ``bench/results/objectives.json`` (the
other cases are kept).

Run: ``python bench/multitask.py`` (``--smoke``: tiny subsets and a few steps, into a temp
folder, to check that the script works).
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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive  # bench/archive.py: finished runs' report files, kept in git

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "multitask"  # the real runs (smoke runs go to a temp folder)
sys.path.insert(0, str(ROOT))
RECIPE = ROOT / "bench" / "recipes" / "multitask-nicta-ncbi.yaml"
SINGLE = {
    "nicta": {
        "recipe": ROOT / "bench/recipes/methods-nicta.yaml",
        "lr": 5e-5,
        "metric": "accuracy",
    },
    "ncbi": {"recipe": ROOT / "bench/recipes/methods-ncbi.yaml", "lr": 2e-4, "metric": "entity_f1"},
}
GRID = [5e-5, 1e-4, 2e-4]
CLI = [sys.executable, "-m", "domaintune.cli"]
CASE = "multitask-nicta-ncbi"


class Bench:
    """Where runs go and which recipes they use (the real benchmark or a smoke test)."""

    def __init__(self, work: Path, results: Path, reference: Path | None, smoke: Path | None):
        """Set the folders; ``smoke`` holds the subset recipes of a smoke run."""
        self.work = work
        self.results = results
        self.reference = reference
        self.recipe = smoke / "multitask.yaml" if smoke else RECIPE
        self.single = {k: smoke / f"{k}.yaml" if smoke else v["recipe"] for k, v in SINGLE.items()}
        self.extra = ["train.max_steps=12", "train.eval_every=6"] if smoke else []

    def multitask_dir(self, lr: float, seed: int) -> Path:
        """Folder of one multi-task run."""
        return self.work / "multitask" / f"lr{lr:g}-s{seed}"

    def single_dir(self, task: str, seed: int) -> Path:
        """Folder of one single-task run: the method comparison's when it matches, else ours."""
        name = f"lr{SINGLE[task]['lr']:g}-s{seed}"
        if self.reference is not None:
            theirs = self.reference / task / "full" / name
            if matches(theirs, self.single[task], self.overrides(SINGLE[task]["lr"], seed)):
                return theirs
        return self.work / "single" / task / name

    def overrides(self, lr: float, seed: int) -> list[str]:
        """Overrides of every run: method, learning rate and seed (threads are left out)."""
        return ['method={"name": "full"}', f"train.lr={lr:g}", f"train.seed={seed}", *self.extra]


def matches(folder: Path, recipe: Path, overrides: list[str]) -> bool:
    """Whether a finished run was trained from ``recipe`` with ``overrides`` (threads aside)."""
    from domaintune.config import dump_recipe, load_recipe

    if not (folder / "results.json").is_file() or not (folder / "recipe.resolved.yaml").is_file():
        return False
    theirs = yaml.safe_load((folder / "recipe.resolved.yaml").read_text(encoding="utf-8"))
    ours = yaml.safe_load(dump_recipe(load_recipe(recipe, overrides)))
    for side in (theirs, ours):
        side["train"].pop("threads", None)
        side.pop("output_dir", None)
    return _same(theirs, ours)


def _same(theirs: Any, ours: Any) -> bool:
    """Equal, except for keys the older run's recipe does not have yet (fields added since)."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        return set(theirs) <= set(ours) and all(_same(v, ours[k]) for k, v in theirs.items())
    return bool(theirs == ours)


def check_recipes(bench: Bench) -> None:
    """The multi-task recipe must use the single-task recipes' task, data and train sections."""
    from domaintune.config import load_recipe

    multi = load_recipe(bench.recipe)
    for sub in multi.task.tasks:  # type: ignore[union-attr]
        single = load_recipe(bench.single[sub.name])
        for field in ("task", "data"):
            if getattr(sub, field) != getattr(single, field):
                raise SystemExit(f"{bench.recipe}: {sub.name}.{field} differs from {single}")
        if multi.train != single.train or multi.model != single.model:
            raise SystemExit(f"{bench.recipe}: model/train differ from {bench.single[sub.name]}")


def train(job: tuple[Path, Path, list[str], int]) -> dict[str, Any] | None:
    """Run one training unless its results exist; None when it failed (see its log)."""
    recipe, folder, overrides, threads = job
    kept = folder.is_relative_to(WORK)  # real runs (not --smoke): report files kept in git
    if not (folder / "results.json").is_file() and kept:  # finished on an earlier checkout
        archive.restore("multitask", WORK, folder, ["results.json"])
    if not (folder / "results.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        cmd = [*CLI, "train", str(recipe), *overrides, f"train.threads={threads}"]
        cmd += ["-o", str(folder), "--overwrite"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        with (folder.parent / f"{folder.name}.log").open("w") as log:
            done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        print(f"  {folder.relative_to(folder.parents[2])}: rc {done.returncode}", flush=True)
        if done.returncode != 0:
            return None
        if kept:
            archive.keep("multitask", WORK, folder, ["results.json"])
    return dict(json.loads((folder / "results.json").read_text()))


def run_all(jobs: list[tuple[Path, Path, list[str], int]], parallel: int) -> None:
    """Run the jobs, ``parallel`` at a time."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(train, jobs))


def load(folder: Path) -> dict[str, Any] | None:
    """A finished run's results.json."""
    path = folder / "results.json"
    return dict(json.loads(path.read_text())) if path.is_file() else None


def best_lr(bench: Bench) -> tuple[float | None, dict[str, float]]:
    """The grid's rate with the best dev tasks_mean (seed 42), and the grid's dev scores."""
    grid = {}
    for lr in GRID:
        results = load(bench.multitask_dir(lr, 42))
        if results is not None:
            grid[f"{lr:g}"] = round(results["validation"]["tasks_mean"], 4)
    if not grid:
        return None, grid
    return float(max(grid, key=lambda k: grid[k])), grid


def stats(values: list[float]) -> dict[str, Any]:
    """Mean, std and the per-seed values."""
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_seed": [round(v, 4) for v in values],
    }


def records(bench: Bench, seeds: list[int], command: str) -> list[dict[str, Any]]:
    """Test metrics of both tasks and the training time, multi-task against single-task."""
    lr, grid = best_lr(bench)
    if lr is None:
        return []
    rows = []
    for seed in seeds:
        multi = load(bench.multitask_dir(lr, seed))
        single = {t: load(bench.single_dir(t, seed)) for t in SINGLE}
        if multi is not None and all(single.values()):
            rows.append((seed, multi, single))
    if not rows:
        return []
    done = [s for s, _, _ in rows]
    out = []
    for task, spec in SINGLE.items():
        metric = spec["metric"]
        ours = stats([m["test"][f"{task}/{metric}"] for _, m, _ in rows])
        ref = stats([s[task]["test"][metric] for _, _, s in rows])  # type: ignore[index]
        out.append(
            {
                "case": f"{CASE}:{task}",
                "metric": f"test_{metric}_mean",
                "ours": round(ours["mean"], 4),
                "reference": round(ref["mean"], 4),
                "ratio": round(ours["mean"] / ref["mean"], 4) if ref["mean"] else None,
                "unit": "score",
                "seeds": done,
                "command": command,
                "std": round(ours["std"], 4),
                "per_seed": ours["per_seed"],
                "reference_std": round(ref["std"], 4),
                "reference_per_seed": ref["per_seed"],
                "lr": lr,
                "lr_grid_dev_tasks_mean": grid,
                "reference_lr": spec["lr"],
            }
        )
    ours_s = stats([m["train"]["seconds"] for _, m, _ in rows])
    ref_s = stats([sum(s[t]["train"]["seconds"] for t in SINGLE) for _, _, s in rows])  # type: ignore[index]
    out.append(
        {
            "case": f"{CASE}:train-time",
            "metric": "train_seconds",
            "ours": round(ours_s["mean"], 1),
            "reference": round(ref_s["mean"], 1),
            "ratio": round(ref_s["mean"] / ours_s["mean"], 4) if ours_s["mean"] else None,
            "unit": "s",
            "seeds": done,
            "command": command + " (reference: the two single-task trainings together)",
            "std": round(ours_s["std"], 1),
            "per_seed": [round(v, 1) for v in ours_s["per_seed"]],
            "reference_std": round(ref_s["std"], 1),
            "reference_per_seed": [round(v, 1) for v in ref_s["per_seed"]],
        }
    )
    return out


def merge(path: Path, new: list[dict[str, Any]]) -> None:
    """Replace this script's records in ``path``; keep the other cases."""
    old = json.loads(path.read_text()) if path.is_file() else []
    kept = [r for r in old if not str(r.get("case", "")).startswith(CASE)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kept + new, indent=1) + "\n")


def smoke_recipes(folder: Path) -> None:
    """Subsets of the data (120 train, 60 dev, 60 test examples a task) and recipes using them."""
    multi = yaml.safe_load(RECIPE.read_text())
    for sub in multi["task"]["tasks"]:
        single = yaml.safe_load(SINGLE[sub["name"]]["recipe"].read_text())
        for split, n in (("train", 120), ("validation", 60), ("test", 60)):
            source = ROOT / sub["data"][split]
            target = folder / f"{sub['name']}-{split}{source.suffix}"
            text = source.read_text(encoding="utf-8")
            if source.suffix == ".conll":
                target.write_text("\n\n".join(text.split("\n\n")[:n]) + "\n", encoding="utf-8")
            else:
                target.write_text("".join(text.splitlines(True)[:n]), encoding="utf-8")
            sub["data"][split] = single["data"][split] = str(target)
        (folder / f"{sub['name']}.yaml").write_text(yaml.safe_dump(single), encoding="utf-8")
    (folder / "multitask.yaml").write_text(yaml.safe_dump(multi), encoding="utf-8")


def main() -> None:
    """Pick the shared LR, run the seeds and the references, merge the records."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (1 thread each)")
    parser.add_argument("--threads", type=int, help="threads a training (default: 1 if --jobs > 1)")
    parser.add_argument(
        "--reference-dir",
        type=Path,
        default=ROOT / "bench" / "work" / "methods",
        help="the method comparison's runs, reused when their recipe matches",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny subsets, 12 steps, temp folder")
    args = parser.parse_args()
    threads = args.threads or (1 if args.jobs > 1 else (os.cpu_count() or 1))
    if args.smoke:
        temp = Path(tempfile.mkdtemp(prefix="bench-multitask-"))
        smoke_recipes(temp)
        bench = Bench(temp / "work", temp / "objectives.json", None, temp)
        print(f"smoke run in {temp}")
    else:
        work = WORK
        bench = Bench(work, ROOT / "bench/results/objectives.json", args.reference_dir, None)
    check_recipes(bench)
    run_all(
        [
            (bench.recipe, bench.multitask_dir(lr, 42), bench.overrides(lr, 42), threads)
            for lr in GRID
        ],
        args.jobs,
    )
    lr, grid = best_lr(bench)
    print(f"shared learning rate: {lr} (dev tasks_mean by lr: {grid})")
    jobs = []
    if lr is not None:
        jobs += [
            (bench.recipe, bench.multitask_dir(lr, s), bench.overrides(lr, s), threads)
            for s in args.seeds
        ]
    for task, spec in SINGLE.items():
        for s in args.seeds:
            folder = bench.single_dir(task, s)
            jobs.append((bench.single[task], folder, bench.overrides(spec["lr"], s), threads))
    run_all(jobs, args.jobs)
    sys.path.insert(0, str(ROOT / "bench"))
    from foundation import machine  # the same wording as the other benchmarks

    command = (
        f"python bench/multitask.py{' --smoke' if args.smoke else ''} ({bench.recipe.name}, "
        f"train.lr picked from {[f'{g:g}' for g in GRID]} on dev tasks_mean; reference: "
        f"single-task full fine-tuning, {', '.join(str(s['recipe'].name) for s in SINGLE.values())}"
        f"; {args.jobs} trainings at once, {threads} thread(s) each; {machine()})"
    )
    new = records(bench, args.seeds, command)
    merge(bench.results, new)
    for r in new:
        print(
            f"{r['case']:32s} {r['metric']:22s} ours {r['ours']} ± {r['std']}  "
            f"single-task {r['reference']} ± {r['reference_std']}  ratio {r['ratio']}"
        )
    print(f"wrote {bench.results}")


if __name__ == "__main__":
    main()
