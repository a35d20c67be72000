"""Low-resource augmentation benchmark: 100 / 500 training examples, with and without each
augmentation, MiniLM, 3 seeds.

Cases: ``fpb`` (financial-phrasebank sentence sentiment, ``bench/recipes/foundation-fpb.yaml``,
test macro F1) and ``ncbi`` (ncbi-disease NER, ``bench/recipes/foundation-ncbi.yaml``, test
entity F1), each at ``data.train_subset.size`` 100 and 500. Every run is a ``domaintune train``
command on that recipe (its learning rate, epochs, batch size and schedule) with overrides:

- ``data.train_subset={size: N, seed: S}`` and ``train.seed=S`` for S in 42, 1, 2: each seed draws
  its own subset (stratified by label; by entity types for NER), and the runs with and without
  augmentation of one seed share it, so the comparison is paired;
- ``data.augment=[<one augmentation>]`` with seed S (the reference run has none): ``eda`` (4
  copies, rate 0.1, WordNet synonyms from the ``augment`` extra), ``contextual`` (2 copies, rate
  0.15, MiniLM itself: no MLM head, so the embeddings scorer), ``mention_replacement`` (NER only,
  2 copies, rate 0.5), ``mention_dictionary`` (the same, with the names of WordNet 3.0's disease
  dictionary added by ``mention_files``: ``scripts/wordnet_gazetteer.py``) and
  ``back_translation`` only with ``--mt-forward/--mt-backward`` (two MarianMT-style folders;
  none installs offline here).

Step-matched control arms, ``repeatK``: no augmentation, ``train.epochs`` × K, so the model
takes as many optimiser steps as with an augmentation of K - 1 copies (K times the data): K = 5
for eda, 3 for contextual, and 2 for mention replacement (which copies only the sentences with
an entity, so its 2 copies make about 2 times the data; ``CONTROL_REPEATS``). At 100 examples
and batch 16 the plain recipe takes only 21 steps, so an augmentation can win by giving more
steps alone; each augmentation is also reported against its ``repeatK`` (case
``...-vs-repeat``) to separate the two. Mention replacement has a second control,
``oversample``: the subset with its sentences that have an entity repeated unchanged, once per
copy (the same sentences and steps, no new mentions; case ``...-vs-oversample``).

Reported per case (``ours`` = with augmentation, ``reference`` = without, ``ratio`` =
ours/reference): the test metric (mean over seeds, with std and per-seed values), the seconds
spent augmenting, the training seconds (ratio = the training-time increase) and the training
examples. Runs live in ``bench/work/augment`` (not committed) and are reused when their
``results.json`` exists for the same overrides; every finished run adds a line to the committed
ledger ``bench/results/augment-runs.jsonl``, so an interrupted benchmark resumes on any
checkout (``--fresh`` ignores it). ``--jobs 2`` runs two trainings at once, one thread each.

Writes its records into ``bench/results/data.json`` (other cases there are kept). Run:
``python bench/augment.py`` (``--smoke``: subsets of 16, one seed, 40 dev/test examples and 3
steps, into a temp folder, to check that it works).
"""

from __future__ import annotations

import argparse
import functools
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLI = [sys.executable, "-m", "domaintune.cli"]
DATASETS: dict[str, dict[str, Any]] = {
    "fpb": {"recipe": "bench/recipes/foundation-fpb.yaml", "metric": "f1_macro", "ner": False},
    "ncbi": {"recipe": "bench/recipes/foundation-ncbi.yaml", "metric": "entity_f1", "ner": True},
}
# mention_dictionary's names: WordNet 3.0's disease dictionary, written before the runs by
# scripts/wordnet_gazetteer.py (an outside resource: no ncbi annotation went into it).
GAZETTEER = "bench/work/augment/wordnet-diseases.tsv"
AUGMENTATIONS: dict[str, dict[str, Any]] = {
    "eda": {"name": "eda", "rate": 0.1, "copies": 4},
    "contextual": {"name": "contextual", "rate": 0.15, "copies": 2},
    "mention_replacement": {"name": "mention_replacement", "rate": 0.5, "copies": 2},
    "mention_dictionary": {
        "name": "mention_replacement",
        "rate": 0.5,
        "copies": 2,
        "mention_files": [GAZETTEER],
    },
}
NER_ONLY = {"mention_replacement", "mention_dictionary"}  # the mention-replacement arms


# Mention replacement copies only sentences with an entity (about half of ncbi-disease's), so
# its 2 copies make about 2.1 times the data, not 3: at batch 16, 210 of 100 sentences take 14
# steps an epoch, as many as 2 x 100 (and 1,042 of 500 take 66 against 64).
CONTROL_REPEATS = dict.fromkeys(NER_ONLY, 2)
# A second control for mention replacement: the subset with its sentences that have an entity
# repeated unchanged, once per copy. The same sentences and steps as the augmented run, so it
# separates the new mentions from showing entity sentences more often.
OVERSAMPLE = "oversample"


def control(aug: str) -> str:
    """The step-matched control arm of an augmentation: as many steps as its training set.

    ``repeatK`` with K = copies + 1, or ``CONTROL_REPEATS`` where an augmentation copies only
    some examples.
    """
    repeats = CONTROL_REPEATS.get(aug, 1 + int(AUGMENTATIONS[aug]["copies"]))
    return f"repeat{repeats}"


def is_control(arm: str) -> bool:
    """Whether an arm is a ``repeatK`` control."""
    return arm.startswith("repeat") and arm[6:].isdigit()


def repeats(arm: str) -> int:
    """K of a ``repeatK`` control (its epochs multiplier); 1 for any other arm."""
    return int(arm[6:]) if is_control(arm) else 1


@functools.cache
def recipe_epochs(path: Path) -> int:
    """A recipe's ``train.epochs`` (read once per recipe)."""
    import yaml

    return int(yaml.safe_load(path.read_text(encoding="utf-8"))["train"]["epochs"])


LOCK = threading.Lock()


class Bench:
    """Where runs, results and the ledger go, and what every run adds (real or smoke)."""

    def __init__(self, work: Path, results: Path, ledger: Path | None, smoke: Path | None):
        """Set the folders; ``smoke`` holds the smoke recipes (small dev/test files)."""
        self.work, self.results, self.ledger, self.smoke = work, results, ledger, smoke
        self.extra = ["train.max_steps=3", "train.eval_every=3"] if smoke else []
        self.budget = 1  # --budget: every arm's epochs times this

    def label(self, size: int) -> str:
        """The size as keys, folders and cases name it (``100x3`` with ``--budget 3``)."""
        return str(size) if self.budget == 1 else f"{size}x{self.budget}"

    def arm_epochs(self, dataset: str, aug: str) -> int:
        """An arm's epochs: the recipe's, times the budget, times K for a ``repeatK`` control."""
        return self.epochs(dataset) * self.budget * repeats(aug)

    def recipe(self, dataset: str) -> str:
        """The recipe of a data set (a smoke copy with small dev/test files in smoke runs)."""
        return str(self.smoke / f"{dataset}.yaml") if self.smoke else DATASETS[dataset]["recipe"]

    def overrides(self, dataset: str, size: int, aug: str, seed: int) -> list[str]:
        """The overrides of one run (threads aside)."""
        out = [
            f'data.train_subset={{"size": {size}, "seed": {seed}}}',
            f"train.seed={seed}",
            *self.extra,
        ]
        if aug == OVERSAMPLE:  # its own train file is the subset; its repeats must stay
            train = os.path.relpath(self.oversampled(dataset, size, seed), ROOT)
            out[0:1] = [f"data.train={train}", "data.clean.dedupe=false"]
        if aug in AUGMENTATIONS:
            out.insert(1, f"data.augment=[{json.dumps({**AUGMENTATIONS[aug], 'seed': seed})}]")
        if self.arm_epochs(dataset, aug) != self.epochs(dataset):
            out.append(f"train.epochs={self.arm_epochs(dataset, aug)}")
        return out

    def oversampled(self, dataset: str, size: int, seed: int) -> Path:
        """The oversample arm's train file: the seed's subset, then its sentences with an entity
        once more per mention-replacement copy (written on first use)."""
        path = self.work / dataset / "subsets" / f"{size}-s{seed}-oversample.conll"
        if not path.is_file():
            from domaintune import api
            from domaintune.config.load import load_recipe

            subset = f'data.train_subset={{"size": {size}, "seed": {seed}}}'
            recipe = load_recipe(ROOT / self.recipe(dataset), [subset])
            train = api.prepare_data(recipe)[1].splits["train"]
            copies = int(AUGMENTATIONS["mention_replacement"]["copies"])
            tagged = [e for e in train if any(t != "O" for t in e["tags"])]
            sentences = [*train, *tagged * copies]
            text = "\n\n".join(
                "\n".join(f"{w}\t{t}" for w, t in zip(e["tokens"], e["tags"], strict=True))
                for e in sentences
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        return path

    def epochs(self, dataset: str) -> int:
        """The recipe's ``train.epochs``."""
        return recipe_epochs(ROOT / self.recipe(dataset))

    def folder(self, dataset: str, size: int, aug: str, seed: int) -> Path:
        """Where one run lives."""
        return self.work / dataset / self.label(size) / aug / f"s{seed}"

    def known(self) -> dict[str, dict[str, Any]]:
        """Finished runs of the ledger, by key (the last line of a key wins)."""
        if self.ledger is None or not self.ledger.is_file():
            return {}
        lines = [json.loads(x) for x in self.ledger.read_text().splitlines() if x.strip()]
        return {e["key"]: e for e in lines}


def entry(folder: Path, key: str, overrides: list[str]) -> dict[str, Any]:
    """A run's ledger line: test metrics, training and augmentation seconds, train size."""
    results = json.loads((folder / "results.json").read_text())
    data = results["data"]
    return {
        "key": key,
        "overrides": overrides,
        "test": results["test"],
        "train_seconds": round(results["train"]["seconds"], 2),
        "augment_seconds": data.get("augment", {}).get("seconds", 0.0),
        "train_examples": data["sizes"]["train"],
        "source": "bench/augment.py",
    }


def train(bench: Bench, job: tuple[str, int, str, int], threads: int) -> dict[str, Any] | None:
    """Run one training unless the ledger or its folder has it; its entry, or None on failure."""
    dataset, size, aug, seed = job
    key = f"{dataset}/{bench.label(size)}/{aug}/s{seed}"
    overrides = bench.overrides(*job)
    known = bench.known().get(key)
    if known is not None and known["overrides"] == overrides:
        return known
    folder = bench.folder(*job)
    stamp = folder / "bench-overrides.json"
    done = (folder / "results.json").is_file() and stamp.is_file()
    if not done or json.loads(stamp.read_text()) != overrides:
        folder.parent.mkdir(parents=True, exist_ok=True)
        cmd = [*CLI, "train", bench.recipe(dataset), *overrides, f"train.threads={threads}"]
        cmd += ["-o", str(folder), "--overwrite"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        with (folder.parent / f"s{seed}.log").open("w") as log:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        print(f"  {key}: rc {rc.returncode}", flush=True)
        if rc.returncode != 0:
            return None
        stamp.write_text(json.dumps(overrides))
    line = entry(folder, key, overrides)
    if bench.ledger is not None:
        with LOCK:
            bench.ledger.parent.mkdir(parents=True, exist_ok=True)
            with bench.ledger.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
    return line


def summary(runs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Means over the seeds of one case and arm."""
    values = [r["test"][metric] for r in runs]
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_seed": [round(v, 4) for v in values],
        "train_seconds": statistics.mean(r["train_seconds"] for r in runs),
        "augment_seconds": statistics.mean(r["augment_seconds"] for r in runs),
        "train_examples": statistics.mean(r["train_examples"] for r in runs),
    }


def records(
    case: str, metric: str, ours: dict[str, Any], ref: dict[str, Any], seeds: list[int], cmd: str
) -> list[dict[str, Any]]:
    """Benchmark records of one case: with (ours) against without (reference) augmentation."""
    rows = [
        (f"test_{metric}_mean", ours["mean"], ref["mean"], "score"),
        ("augment_seconds", ours["augment_seconds"], 0.0, "s"),
        ("train_seconds", ours["train_seconds"], ref["train_seconds"], "s"),
        ("train_examples", ours["train_examples"], ref["train_examples"], "count"),
    ]
    out = []
    for name, a, b, unit in rows:
        record = {
            "case": case,
            "metric": name,
            "ours": round(a, 4),
            "reference": round(b, 4),
            "ratio": round(a / b, 4) if b else None,
            "unit": unit,
            "seeds": seeds,
            "command": cmd,
        }
        if unit == "score":
            record.update(
                std=round(ours["std"], 4),
                per_seed=ours["per_seed"],
                reference_std=round(ref["std"], 4),
                reference_per_seed=ref["per_seed"],
            )
        out.append(record)
    return out


def smoke_recipes(folder: Path) -> None:
    """Copies of the recipes whose dev and test files hold their first 40 examples."""
    import yaml

    for dataset, spec in DATASETS.items():
        recipe = yaml.safe_load((ROOT / spec["recipe"]).read_text())
        for split in ("validation", "test"):
            source = ROOT / recipe["data"][split]
            text = source.read_text(encoding="utf-8")
            parts = text.split("\n\n")[:40] if spec["ner"] else text.splitlines()[:40]
            small = folder / f"{dataset}-{split}{source.suffix}"
            small.write_text(("\n\n" if spec["ner"] else "\n").join(parts) + "\n", encoding="utf-8")
            recipe["data"][split] = str(small)
        recipe["data"]["train"] = str(ROOT / recipe["data"]["train"])
        (folder / f"{dataset}.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")


def main() -> None:
    """Run the missing trainings, then write the records."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 500])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--augmentations", nargs="+", default=list(AUGMENTATIONS))
    parser.add_argument("--mt-forward", help="seq2seq folder into the pivot (back-translation)")
    parser.add_argument("--mt-backward", help="seq2seq folder back from the pivot")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (1 thread each)")
    parser.add_argument(
        "--threads", type=int, help="threads per training (default: 1 when --jobs > 1, else all)"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the committed ledger")
    parser.add_argument(
        "--budget",
        type=int,
        default=1,
        help="every arm's epochs times this (cases and folders named SIZExB): does an "
        "augmentation help once the no-augmentation run has trained longer?",
    )
    parser.add_argument("--smoke", action="store_true", help="subsets of 16, 3 steps, temp folder")
    args = parser.parse_args()
    os.chdir(ROOT)  # the recipes' data paths are relative to the project root
    augs = list(args.augmentations)
    if args.mt_forward and args.mt_backward:
        AUGMENTATIONS["back_translation"] = {
            "name": "back_translation",
            "forward": args.mt_forward,
            "backward": args.mt_backward,
        }
        augs.append("back_translation")
    else:
        print("back_translation skipped: give --mt-forward and --mt-backward model folders")
    if args.smoke:
        temp = Path(tempfile.mkdtemp(prefix="augment-smoke-"))
        smoke_recipes(temp)
        bench = Bench(temp / "work", temp / "data.json", None, temp)
        args.sizes, args.seeds = [16], args.seeds[:1]
        print(f"smoke run in {temp}")
    else:
        ledger = None if args.fresh else ROOT / "bench" / "results" / "augment-runs.jsonl"
        bench = Bench(
            ROOT / "bench" / "work" / "augment", ROOT / "bench/results/data.json", ledger, None
        )
    bench.budget = args.budget
    if "mention_dictionary" in augs and "ncbi" in args.datasets:
        gazetteer = [sys.executable, "scripts/wordnet_gazetteer.py", GAZETTEER]
        subprocess.run(gazetteer, cwd=ROOT, check=True)
    threads = args.threads or (1 if args.jobs > 1 else (os.cpu_count() or 1))
    arms = {}
    for d in args.datasets:
        mine = [a for a in augs if DATASETS[d]["ner"] or a not in NER_ONLY]
        arms[d] = ["none", *sorted({control(a) for a in mine}), *mine]
        if NER_ONLY & set(mine):
            arms[d].insert(1, OVERSAMPLE)
    jobs = [
        (d, n, a, s) for d in args.datasets for n in args.sizes for a in arms[d] for s in args.seeds
    ]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        finished = list(pool.map(lambda job: train(bench, job, threads), jobs))
    done = {job: run for job, run in zip(jobs, finished, strict=True) if run is not None}
    sys.path.insert(0, str(ROOT / "bench"))
    from foundation import machine  # the same wording as the other benchmarks

    out = []
    for d in args.datasets:
        metric = DATASETS[d]["metric"]
        for n in args.sizes:
            arm = {
                a: {s: done[(d, n, a, s)] for s in args.seeds if (d, n, a, s) in done}
                for a in arms[d]
            }
            flags = (" --smoke" if args.smoke else "") + (
                f" --budget {args.budget}" if args.budget != 1 else ""
            )
            base = (
                f"python bench/augment.py{flags} "
                f"({bench.recipe(d)} with data.train_subset={{size: {n}, seed: S}} train.seed=S"
            )
            plain = f"the same with train.epochs={bench.arm_epochs(d, 'none')} and no data.augment"
            copies = AUGMENTATIONS["mention_replacement"]["copies"]
            for aug in arms[d][1:]:
                what = (
                    "no data.augment"
                    if is_control(aug) or aug == OVERSAMPLE
                    else f"data.augment=[{json.dumps(AUGMENTATIONS[aug])} + seed S]"
                ) + f" train.epochs={bench.arm_epochs(d, aug)}"
                pairs = [("none", "", plain)]
                if aug == OVERSAMPLE:
                    what = f"the subset's sentences with an entity repeated {copies}x more"
                elif not is_control(aug):
                    steps = f"train.epochs={bench.arm_epochs(d, control(aug))} and no data.augment"
                    pairs.append((control(aug), "-vs-repeat", f"the same with {steps}"))
                if aug in NER_ONLY and OVERSAMPLE in arms[d]:
                    text = f"no data.augment, the sentences with an entity repeated {copies}x more"
                    pairs.append((OVERSAMPLE, "-vs-oversample", text))
                for ref_arm, suffix, ref_text in pairs:
                    seeds = [s for s in args.seeds if s in arm[aug] and s in arm[ref_arm]]
                    if not seeds:
                        continue
                    cmd = f"{base} {what}; reference: {ref_text}; {machine()})"
                    ours = summary([arm[aug][s] for s in seeds], metric)
                    ref = summary([arm[ref_arm][s] for s in seeds], metric)
                    case = f"{d}-{bench.label(n)}-{aug}{suffix}"
                    out += records(case, metric, ours, ref, seeds, cmd)
    bench.results.parent.mkdir(parents=True, exist_ok=True)
    # data.json also holds bench/knowledge.py's records: replace only the cases written here
    written = {r["case"] for r in out}
    old = json.loads(bench.results.read_text()) if bench.results.is_file() else []
    bench.results.write_text(
        json.dumps([r for r in old if r["case"] not in written] + out, indent=1) + "\n"
    )
    for r in out:
        value, reference = str(r["ours"]), str(r["reference"])
        print(f"{r['case']:32s} {r['metric']:22s} {value:>10} {reference:>10} {r['ratio']}")
    print(f"wrote {bench.results}")


if __name__ == "__main__":
    main()
