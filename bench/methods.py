"""Method comparison: every adaptation method on MiniLM, tuned on dev, 3 seeds on test.

Cases: ``nicta`` (nicta-piboso sentence classification, accuracy), ``ncbi`` (ncbi-disease NER,
softmax head, entity F1) and ``ncbi-crf`` (the same with ``head: crf``, at the learning rates
tuned for ``ncbi``). For every method:

1. **grid**: train with seed 42 at each learning rate of its grid; pick the one with the best
   validation metric (the dev split; the test split is not looked at);
2. **seeds**: train at that learning rate with every seed (seed 42's grid run is reused);
3. report test metric mean ± std, trainable parameters, training time, peak RSS and the
   checkpoint size (the adapter-only folder where the method has one, else ``final/``).

Times: the training loop's wall time (``train.seconds`` of results.json) and the CPU time of the
whole ``domaintune train`` process (user + system: loading, training, evaluation), each the
median over the seeds. Wall time grows when other work shares the cores; CPU time hardly does,
so it is the better cost figure on a shared machine.

Each run is a ``domaintune train`` command with overrides of ``bench/recipes/methods-*.yaml``
(``method=...`` and ``train.lr=...``), so every method shares data, epochs, batch size and
schedule. Run folders live in ``bench/work/methods`` (not committed); every finished run also adds
one line to the committed ledger ``bench/results/methods-runs.jsonl`` (its dev and test metrics and
costs), and a run already in the ledger is not trained again, so an interrupted comparison resumes
on any checkout. ``--fresh`` ignores the ledger and retrains everything. ``--jobs 2`` runs two
trainings at once with one thread each (the times in the table are then one-thread times).

Writes ``bench/results/methods.json`` (records ``{case, metric, ours, reference, ratio, unit,
seeds, command}``, the reference being full fine-tuning) and ``docs/methods-table.md``.
Run: ``make bench`` or ``python bench/methods.py --cases nicta ncbi ncbi-crf``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "work" / "methods"
RESULTS = ROOT / "bench" / "results" / "methods.json"
LEDGER = ROOT / "bench" / "results" / "methods-runs.jsonl"
LEDGER_LOCK = threading.Lock()
USE_LEDGER = True  # --fresh turns it off
TABLE = ROOT / "docs" / "methods-table.md"
CLI = [sys.executable, "-m", "domaintune.cli"]

CASES: dict[str, dict[str, Any]] = {
    "nicta": {
        "recipe": "bench/recipes/methods-nicta.yaml",
        "metric": "accuracy",
        "also": ["f1_macro"],
        "overrides": [],
        "grid_from": "nicta",
    },
    "ncbi": {
        "recipe": "bench/recipes/methods-ncbi.yaml",
        "metric": "entity_f1",
        "also": ["entity_precision", "entity_recall"],
        "overrides": [],
        "grid_from": "ncbi",
    },
    "ncbi-crf": {
        "recipe": "bench/recipes/methods-ncbi.yaml",
        "metric": "entity_f1",
        "also": ["entity_precision", "entity_recall"],
        "overrides": ["task.head=crf"],
        "grid_from": "ncbi",  # the CRF runs use the learning rate tuned with the softmax head
    },
}

# name -> (method section, learning-rate grid). Grids are centred on each method's usual range.
METHODS: dict[str, tuple[dict[str, Any], list[float]]] = {
    "full": ({"name": "full"}, [5e-5, 1e-4, 2e-4]),
    "freeze-gradual": (
        {"name": "freeze", "embeddings": False, "gradual_unfreezing": True, "unfreeze_every": 100},
        [1e-4, 2e-4],
    ),
    "bitfit": ({"name": "bitfit"}, [1e-3, 3e-3]),
    # the default: r 16, alpha 32, every linear layer, LayerNorms trained (train_norms)
    "lora": ({"name": "lora"}, [5e-4, 2e-3]),
    # the recipe most peft examples use (r 8 on query/value, norms frozen), for comparison
    "lora-qv-r8": (
        {
            "name": "lora",
            "r": 8,
            "alpha": 16,
            "target_modules": ["query", "value"],
            "train_norms": False,
        },
        [5e-4, 1e-3],
    ),
    # tried because LoRA with frozen norms trailed full fine-tuning by 2.5 points on ncbi
    # (docs/methods.md): frozen norms, a larger rank, more epochs; and the norms with r 64
    "lora-no-norms": ({"name": "lora", "train_norms": False}, [5e-4, 1e-3, 2e-3, 4e-3]),
    "lora-r64": ({"name": "lora", "r": 64, "alpha": 128, "train_norms": False}, [1e-3, 2e-3]),
    "lora-e6": ({"name": "lora", "train_norms": False}, [2e-3]),
    "lora-r64-norms": ({"name": "lora", "r": 64, "alpha": 128}, [1e-3]),
    "adalora": ({"name": "adalora"}, [5e-4, 2e-3]),
    "ia3": ({"name": "ia3"}, [3e-3, 1e-2]),
    # the default since the prefix-mlp runs below: the prefix itself is the parameter
    "prefix": ({"name": "prefix"}, [3e-3, 1e-2]),
    # the paper's MLP reparameterisation: collapsed to one class at every rate from 1e-3 to 1e-2
    # (it moves the prefix far faster than the rate suggests); 1e-4 is near the paper's 5e-5
    "prefix-mlp": ({"name": "prefix", "projection": True}, [1e-4, 3e-3, 1e-2]),
    "prompt_tuning": ({"name": "prompt_tuning"}, [1e-2, 3e-2]),
    "adapter-houlsby": ({"name": "adapter", "placement": "houlsby"}, [1e-3, 3e-3]),
    "adapter-pfeiffer": ({"name": "adapter", "placement": "pfeiffer"}, [1e-3, 3e-3]),
}


# How many 1-3-10 steps a grid may grow past its edge when its best point sits there.
MAX_EXTENSIONS = 2

# Rows that explain a choice (docs/methods.md) rather than offer a method: their grids do not
# grow, and they run only on these cases with these seeds.
ABLATIONS: dict[str, dict[str, list[int]]] = {
    "lora-no-norms": {"nicta": [42], "ncbi": [42, 1, 2], "ncbi-crf": [42, 1, 2]},
    "lora-r64": {"ncbi": [42]},
    "lora-e6": {"ncbi": [42]},
    "lora-r64-norms": {"ncbi": [42]},
    "prefix-mlp": {"nicta": [42], "ncbi": [42]},
}

# Extra recipe overrides of a method row (everything else is shared by every row).
EXTRA: dict[str, list[str]] = {"lora-e6": ["train.epochs=6"]}
# Tried on ncbi and dropped (seed 42, dev entity F1 after epoch 1): the head at full fine-tuning's
# rate (head_lr 2e-4) with LoRA at 4e-3 still collapsed to all-O (0.0); at 2e-3 0.7187 against
# 0.7305 without it. Six epochs at 2e-3 ended at dev 0.8107 against 0.8167 for three.


def machine() -> str:
    """The CPU facts that decide our precision."""
    sys.path.insert(0, str(ROOT / "bench"))
    from foundation import machine as describe  # the same wording as the other benchmarks

    return str(describe())


def run_dir(case: str, method: str, lr: float, seed: int) -> Path:
    """Where one training run lives."""
    return WORK / case / method / f"lr{lr:g}-s{seed}"


def command(case: str, method: str, lr: float, seed: int, threads: int) -> list[str]:
    """The ``domaintune train`` command of one run."""
    spec = CASES[case]
    section = json.dumps(METHODS[method][0])
    return [
        *CLI,
        "train",
        spec["recipe"],
        f"method={section}",
        f"train.lr={lr:g}",
        f"train.seed={seed}",
        f"train.threads={threads}",
        *spec["overrides"],
        *EXTRA.get(method, []),
        "-o",
        str(run_dir(case, method, lr, seed)),
        "--overwrite",
    ]


def run_key(case: str, method: str, lr: float, seed: int) -> str:
    """The ledger's name of one run."""
    return f"{case}/{method}/lr{lr:g}-s{seed}"


def ledger() -> dict[str, dict[str, Any]]:
    """Every finished run of the committed ledger, by ``run_key`` (the last line of a key wins)."""
    if not USE_LEDGER or not LEDGER.is_file():
        return {}
    entries = [json.loads(line) for line in LEDGER.read_text().splitlines() if line.strip()]
    return {run_key(e["case"], e["method"], e["lr"], e["seed"]): e for e in entries}


def ledger_entry(case: str, method: str, lr: float, seed: int) -> dict[str, Any]:
    """One run's ledger line, from its run folder."""
    folder = run_dir(case, method, lr, seed)
    results = json.loads((folder / "results.json").read_text())
    cpu = folder.parent / f"lr{lr:g}-s{seed}.cpu"
    return {
        "case": case,
        "method": method,
        "lr": lr,
        "seed": seed,
        "validation": results["validation"],
        "test": results["test"],
        "trainable": results["train"]["trainable_parameters"],
        "total": results["train"]["total_parameters"],
        "seconds": round(results["train"]["seconds"], 1),
        "peak_rss_mib": results["peak_rss_mib"],
        "checkpoint_mib": checkpoint_mib(folder),
        "cpu_seconds": float(cpu.read_text()) if cpu.is_file() else None,
        "source": "bench/methods.py",
    }


def train(job: tuple[str, str, float, int, int], again: bool = False) -> dict[str, Any] | None:
    """Run one training unless the ledger has it; its ledger entry, or None when it failed.

    ``again`` trains even a run the ledger has (``--stage retime``); its new line replaces the
    old one, since the ledger's last line of a run wins.
    """
    case, method, lr, seed, threads = job
    known = ledger().get(run_key(case, method, lr, seed))
    if known is not None and known.get("test") is not None and not again:
        return known
    folder = run_dir(case, method, lr, seed)
    if not (folder / "results.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        log = folder.parent / f"lr{lr:g}-s{seed}.log"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        with log.open("w") as handle:
            process = subprocess.Popen(
                command(case, method, lr, seed, threads),
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
            )
            _, status, usage = os.wait4(process.pid, 0)  # the child's own CPU time
        returncode = process.returncode = os.waitstatus_to_exitcode(status)
        print(f"  {case:9s} {method:17s} lr {lr:<7g} seed {seed:<3d} rc {returncode}", flush=True)
        if returncode != 0:
            return None
        cpu = folder.parent / f"lr{lr:g}-s{seed}.cpu"
        cpu.write_text(f"{usage.ru_utime + usage.ru_stime:.1f}\n")
    entry = {**ledger_entry(case, method, lr, seed), "threads": threads}
    with LEDGER_LOCK:
        LEDGER.parent.mkdir(parents=True, exist_ok=True)
        with LEDGER.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
    return entry


def checkpoint_mib(folder: Path) -> float:
    """Size of what a user must keep: the adapter-only folder if any, else the final model."""
    final = folder / "final"
    target = final / "adapter" if (final / "adapter").is_dir() else final
    files = [target / "model.safetensors"] if target == final else list(target.iterdir())
    return round(sum(f.stat().st_size for f in files if f.is_file()) / 2**20, 3)


def run_all(
    jobs: list[tuple[str, str, float, int, int]], parallel: int, again: bool = False
) -> None:
    """Run the jobs, ``parallel`` at a time (``again``: even those the ledger has)."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda job: train(job, again), jobs))


def ladder(lr: float, up: bool) -> float:
    """The next learning rate past ``lr`` on the 1-2-3-5 ladder, at least 2.5x away."""
    steps = sorted(m * 10.0**e for e in range(-7, 1) for m in (1, 2, 3, 5))
    if up:
        return float(f"{min(v for v in steps if v >= 2.5 * lr * (1 - 1e-9)):.0e}")
    return float(f"{max(v for v in steps if v <= lr / 2.5 * (1 + 1e-9)):.0e}")


def dev_scores(grid_case: str, method: str, grid: list[float]) -> dict[float, float]:
    """Validation metric (seed 42) of every finished grid point."""
    runs = ledger()
    scores = {}
    for lr in grid:
        entry = runs.get(run_key(grid_case, method, lr, 42))
        if entry is not None:
            value = entry["validation"].get(CASES[grid_case]["metric"])
            if value is not None:
                scores[lr] = value
    return scores


def grid_of(grid_case: str, method: str) -> tuple[list[float], float | None]:
    """The method's grid, extended while its best point sits on an edge; the next point to run.

    A best learning rate at the edge of the grid says the grid missed the optimum, so the grid
    grows one 1-3-10 step past that edge (at most ``MAX_EXTENSIONS`` times) before a pick is
    final. Returns the grid so far and the learning rate still to run (None when settled).
    """
    grid = sorted(METHODS[method][1])
    for _ in range(MAX_EXTENSIONS + 1):
        scores = dev_scores(grid_case, method, grid)
        missing = [lr for lr in grid if lr not in scores]
        if missing:
            return grid, missing[0]
        best = max(scores, key=lambda k: scores[k])
        settled = len(grid) < 2 or best not in (grid[0], grid[-1])
        if settled or method in ABLATIONS or len(grid) >= len(METHODS[method][1]) + MAX_EXTENSIONS:
            return grid, None
        if best == grid[0]:
            grid = [ladder(best, up=False), *grid]
        else:
            grid = [*grid, ladder(best, up=True)]
    return grid, None


def best_lr(case: str, method: str) -> float | None:
    """The grid's learning rate with the best validation metric (seed 42)."""
    grid_case = CASES[case]["grid_from"]
    grid, _ = grid_of(grid_case, method)
    scores = dev_scores(grid_case, method, grid)
    return max(scores, key=lambda k: scores[k]) if scores else None


def median_or_none(values: list[float | None]) -> float | None:
    """Median of the values that are known."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def max_or_none(values: list[float | None]) -> float | None:
    """Largest of the values that are known."""
    known = [v for v in values if v is not None]
    return max(known) if known else None


def summary(case: str, method: str, seeds: list[int]) -> dict[str, Any] | None:
    """Mean/std of the test metric and the costs over the seeds that finished."""
    lr = best_lr(case, method)
    if lr is None:
        return None
    metric = CASES[case]["metric"]
    known = ledger()
    runs = [
        (seed, entry)
        for seed in seeds
        if (entry := known.get(run_key(case, method, lr, seed))) is not None
        and entry.get("test") is not None
    ]
    if not runs:
        return None
    values = [r["test"][metric] for _, r in runs]
    timed = [r for _, r in runs if r.get("cpu_seconds") is not None] or [r for _, r in runs]
    grid_case = CASES[case]["grid_from"]
    grid = {
        f"{g:g}": v for g, v in dev_scores(grid_case, method, grid_of(grid_case, method)[0]).items()
    }
    return {
        "lr": lr,
        "grid": grid,
        "seeds": [s for s, _ in runs],
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_seed": [round(v, 4) for v in values],
        "also": {
            m: round(statistics.mean(r["test"][m] for _, r in runs), 4)
            for m in CASES[case]["also"]
            if all(m in r["test"] for _, r in runs)
        },
        "trainable": next((r["trainable"] for _, r in runs if r["trainable"]), None),
        "total": next((r["total"] for _, r in runs if r["total"]), None),
        # costs: None where a ledger line kept none (lines recovered from an earlier record).
        # Times come from the runs timed one by one (with their CPU time) where there are any:
        # a recovered line holds its seeds' mean wall time, measured on another machine.
        "seconds": median_or_none([r["seconds"] for r in timed]),
        "cpu_seconds": median_or_none([r.get("cpu_seconds") for r in timed]),
        "peak_rss_mib": max_or_none([r["peak_rss_mib"] for _, r in runs]),
        "checkpoint_mib": max_or_none([r["checkpoint_mib"] for _, r in runs]),
    }


def records(case: str, rows: dict[str, dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """Benchmark records of one case; the reference of every method is full fine-tuning."""
    full = rows.get("full")
    out = []
    for method, row in rows.items():
        cmd = (
            f"python bench/methods.py --cases {case} ({CASES[case]['recipe']} with "
            f"method={json.dumps(METHODS[method][0])} train.lr={row['lr']:g}; lr grid on dev "
            f"{row['grid']}; reference: full fine-tuning; {machine()})"
        )
        for metric, ours, ref, unit, better_high in [
            (f"test_{CASES[case]['metric']}_mean", row["mean"], full and full["mean"], "score", 1),
            ("trainable_parameters", row["trainable"], full and full["trainable"], "count", 0),
            ("train_seconds", row["seconds"], full and full["seconds"], "s", 0),
            ("run_cpu_seconds", row["cpu_seconds"], full and full["cpu_seconds"], "s", 0),
            ("peak_rss", row["peak_rss_mib"], full and full["peak_rss_mib"], "MiB", 0),
            ("checkpoint_size", row["checkpoint_mib"], full and full["checkpoint_mib"], "MiB", 0),
        ]:
            ratio = None
            if ref:
                ratio = round(ours / ref if better_high else ref / ours, 4) if ours else None
            out.append(
                {
                    "case": f"{case}-{method}",
                    "metric": metric,
                    "ours": None if ours is None else round(ours, 4),
                    "reference": None if ref is None else round(ref, 4),
                    "ratio": ratio,
                    "unit": unit,
                    "seeds": row["seeds"],
                    "command": cmd,
                    **(
                        {
                            "std": round(row["std"], 4),
                            "per_seed": row["per_seed"],
                            "lr": row["lr"],
                            "lr_grid_dev": row["grid"],
                            **{f"test_{k}_mean": v for k, v in row["also"].items()},
                        }
                        if unit == "score"
                        else {}
                    ),
                }
            )
    return out


def cost(value: float | None, unit: str, digits: int) -> str:
    """One cost cell; "not kept" for runs recovered from an earlier record without it."""
    return "not kept" if value is None else f"{value:.{digits}f} {unit}"


def table(all_rows: dict[str, dict[str, dict[str, Any]]], seeds: list[int]) -> str:
    """The Markdown comparison table (one section per case)."""
    lines = ["<!-- written by bench/methods.py; do not edit by hand -->", ""]
    for case, rows in all_rows.items():
        metric = CASES[case]["metric"]
        lines += [
            f"### {case}: test {metric} (mean ± std over seeds), costs",
            "",
            "| method | lr (dev grid) | test "
            + metric
            + " | seeds | trainable params | train time (wall) | run CPU time | peak RSS "
            "| checkpoint |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for method, r in rows.items():
            grid = ", ".join(f"{k}: {v:.4f}" for k, v in r["grid"].items() if v is not None)
            base = r["total"] or rows.get("full", r)["total"]  # earlier records kept no total
            share = f" ({100 * r['trainable'] / base:.2f}%)" if base and r["trainable"] else ""
            params = "not kept" if r["trainable"] is None else f"{r['trainable']:,}{share}"
            lines.append(
                f"| {method} | {r['lr']:g} ({grid}) | {r['mean']:.4f} ± {r['std']:.4f} | "
                f"{len(r['seeds'])} | {params} | {cost(r['seconds'], 's', 0)} | "
                f"{cost(r['cpu_seconds'], 's', 0)} | "
                f"{cost(r['peak_rss_mib'], 'MiB', 0)} | {cost(r['checkpoint_mib'], 'MiB', 2)} |"
            )
        missing = [
            m for m in METHODS if m not in rows and (m not in ABLATIONS or case in ABLATIONS[m])
        ]

        if missing:
            lines.append(f"\nNot measured yet: {', '.join(missing)}.")
        lines.append("")
    picks = []
    for method in METHODS:
        chosen = {c: lr for c in ("nicta", "ncbi") if (lr := best_lr(c, method)) is not None}
        if chosen:
            picks.append(f"{method} " + " / ".join(f"{c} {lr:g}" for c, lr in chosen.items()))
    lines.append(
        "Learning rate picked on dev per method (nicta: classification, ncbi: token "
        "classification; `DEFAULT_LR` and `DEFAULT_LR_BY_TASK` in domaintune/config/methods.py "
        "hold those of the methods' default settings, not of the variant rows lora-qv-r8, "
        "lora-no-norms, lora-r64, lora-e6, lora-r64-norms, prefix-mlp and adapter-houlsby): "
        + "; ".join(picks)
        + "."
    )
    return "\n".join(lines)


def main() -> None:
    """Tune, run the seeds, and write the results and the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="in run order"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument(
        "--stage",
        choices=["grid", "seeds", "report", "retime"],
        default="seeds",
        help="retime: train the picked runs of --methods/--seeds again for their costs (runs "
        "recovered from an earlier record kept no per-run or CPU time)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (1 thread each)")
    parser.add_argument(
        "--threads", type=int, help="threads per training (default: 1 when --jobs > 1, else all)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="ignore the committed ledger and retrain every run"
    )
    args = parser.parse_args()
    global USE_LEDGER
    USE_LEDGER = not args.fresh
    threads = args.threads or (1 if args.jobs > 1 else (os.cpu_count() or 1))
    if args.stage in ("grid", "seeds"):
        grid_cases = sorted({CASES[c]["grid_from"] for c in args.cases})
        while True:  # method by method, so the first methods finish on every case first
            todo = [
                (case, m, lr, 42, threads)
                for m in args.methods
                for case in grid_cases
                if m not in ABLATIONS or case in ABLATIONS[m]
                if (lr := grid_of(case, m)[1]) is not None
            ]
            if not todo:
                break
            run_all(todo, args.jobs)
            finished = [run_key(*job[:4]) in ledger() for job in todo]
            if not any(finished):
                break  # every run failed: do not loop forever
    if args.stage == "retime":
        retimed = [
            (case, m, lr, s, threads)
            for case in args.cases
            for m in args.methods
            if (lr := best_lr(case, m)) is not None
            for s in args.seeds
            if not (run_dir(case, m, lr, s) / "results.json").is_file()  # not run on this machine
        ]
        run_all(retimed, args.jobs, again=True)
    if args.stage == "seeds":
        jobs = []
        for case in args.cases:
            for m in args.methods:
                lr = best_lr(case, m)
                seeds = ABLATIONS[m].get(case, []) if m in ABLATIONS else args.seeds
                if lr is not None:
                    jobs += [(case, m, lr, s, threads) for s in seeds]
        run_all(jobs, args.jobs)
    all_rows = {}
    for case in CASES:
        rows = {m: s for m in METHODS if (s := summary(case, m, args.seeds)) is not None}
        if rows:
            all_rows[case] = rows
    new = [r for case, rows in all_rows.items() for r in records(case, rows, args.seeds)]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(new, indent=1) + "\n")
    TABLE.write_text(table(all_rows, args.seeds), encoding="utf-8")
    print(TABLE.read_text())


if __name__ == "__main__":
    main()
