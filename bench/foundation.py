"""Foundation benchmark: our recipe against a plain HF Trainer script, side by side in one run.

For each case (financial-phrasebank classification, ncbi-disease NER) both sides train MiniLM
on the same data, for the same epochs, with the same seed, one after the other on this machine.
Writes bench/results/foundation.json as a list of records
``{case, metric, ours, reference, ratio, unit, seeds, command}``.

Run: ``make bench`` (or ``python bench/foundation.py [--cases fpb ncbi]``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results" / "foundation.json"
SHARED = ROOT.parent / "shared" / "data"

CASES = {
    "fpb": {
        "task": "classification",
        "data": SHARED / "financial-phrasebank",
        "recipe": ROOT / "bench" / "recipes" / "foundation-fpb.yaml",
        "metrics": ["accuracy", "f1_macro"],
    },
    "ncbi": {
        "task": "ner",
        "data": SHARED / "ncbi-disease",
        "recipe": ROOT / "bench" / "recipes" / "foundation-ncbi.yaml",
        "metrics": ["entity_f1", "entity_precision", "entity_recall"],
    },
}


def model_folder() -> str:
    """The packaged MiniLM folder (the reference script needs a path)."""
    sys.path.insert(0, str(ROOT))
    from domaintune.models.aliases import resolve_alias

    return str(resolve_alias("minilm"))


def machine() -> str:
    """The CPU facts that decide our precision: cores, vector width and native bf16 units."""
    from domaintune.api import cpu_has_bf16

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    avx = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    bf16 = "native bf16" if cpu_has_bf16() else "no bf16 units"
    return f"{os.cpu_count()}-core CPU ({avx}, {bf16})"


def run(cmd: list[str], log: Path) -> float:
    """Run a command from the repository root, logging its output; return wall seconds."""
    start = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(cmd, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"benchmark command failed ({done.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - start


def bench_case(name: str, seed: int) -> list[dict[str, object]]:
    """Run ours then the reference for one case; return the records."""
    case = CASES[name]
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ours_cmd = [
        sys.executable,
        "-m",
        "domaintune.cli",
        "train",
        str(case["recipe"]),
        f"train.seed={seed}",
        "-o",
        str(out / "ours"),
    ]
    ref_json = out / "reference.json"
    ref_cmd = [
        sys.executable,
        "bench/hf_reference.py",
        "--task",
        str(case["task"]),
        "--data-dir",
        str(case["data"]),
        "--model",
        model_folder(),
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--lr",
        "5e-5",
        "--seed",
        str(seed),
        "--output-dir",
        str(out / "reference-trainer"),
        "--result-json",
        str(ref_json),
    ]
    print(f"[{name}] ours: {' '.join(ours_cmd)}", flush=True)
    run(ours_cmd, out / "ours.log")
    print(f"[{name}] reference: {' '.join(ref_cmd)}", flush=True)
    run(ref_cmd, out / "reference.log")
    ours = json.loads((out / "ours" / "results.json").read_text())
    ref = json.loads(ref_json.read_text())
    shown_ours = "python -m domaintune.cli train " + str(Path(case["recipe"]).relative_to(ROOT))
    command = (
        f"python bench/foundation.py --cases {name}  (ours: {shown_ours}; "
        f"reference: bench/hf_reference.py --task {case['task']}; {machine()}; "
        f"ours ran in {ours['train']['precision']})"
    )
    records: list[dict[str, object]] = []

    def add(metric: str, o: float, r: float, unit: str, ratio: float) -> None:
        records.append(
            {
                "case": f"{name}-minilm",
                "metric": metric,
                "ours": round(o, 4),
                "reference": round(r, 4),
                "ratio": round(ratio, 3),
                "unit": unit,
                "seeds": [seed],
                "command": command,
            }
        )

    o_sec, r_sec = ours["train"]["seconds"], ref["train_seconds"]
    add("train_wall_time", o_sec, r_sec, "s", r_sec / o_sec)
    o_sps, r_sps = ours["train"]["samples_per_second"], ref["train_samples_per_second"]
    add("train_samples_per_second", o_sps, r_sps, "samples/s", o_sps / r_sps)
    add(
        "peak_rss",
        ours["peak_rss_mib"],
        ref["peak_rss_mib"],
        "MiB",
        ref["peak_rss_mib"] / ours["peak_rss_mib"],
    )
    for metric in case["metrics"]:
        o, r = ours["test"][metric], ref["test"][metric]
        add(f"test_{metric}", o, r, "score", o / r if r else float("inf"))
    return records


def main() -> None:
    """Run the chosen cases and write bench/results/foundation.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    records: list[dict[str, object]] = []
    if RESULTS.exists():  # keep the records of cases not re-run now
        records = [
            r
            for r in json.loads(RESULTS.read_text())
            if str(r["case"]).split("-")[0] not in args.cases
        ]
    for name in args.cases:
        records.extend(bench_case(name, args.seed))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(records, indent=1) + "\n")
    for r in records:
        print(
            f"{r['case']:14s} {r['metric']:26s} ours {r['ours']:>10} ref {r['reference']:>10} "
            f"ratio {r['ratio']}"
        )


if __name__ == "__main__":
    main()
