"""Knowledge benchmark: knowledge injection on ncbi-disease, knowledge-aware masking in DAPT.

Cases (MiniLM, every seed, ours = with knowledge, reference = without):

- ``inject``: ncbi-disease NER (``bench/recipes/methods-ncbi.yaml``) with
  ``data.knowledge.file=builtin:ncbi-disease/knowledge.tsv`` against the same recipe without it.
  Besides test entity F1 it reports recall on the test mentions whose name is in the graph and
  on those that are not, and the **leakage check**: the graph is built from the training split
  only (``scripts/build_ncbi_knowledge.py``), so a test mention is in it only where the same
  name is annotated in train; the record says how many test mentions (names and occurrences)
  that is.
- ``masking``: masked-LM DAPT on pubmed-abstracts/train.txt (``dapt-pubmed-minilm.yaml``) with
  whole-word masking (reference) or knowledge-aware masking (ours: the graph's disease names
  masked first, each whole), same seed and steps; then ncbi-disease NER from each DAPT model
  (``model.init_from``), every seed.

Runs go to ``bench/work/knowledge`` and are reused when their ``results.json`` exists
(``--fresh`` retrains); ``--jobs 2`` runs two trainings at once with one thread each. Records
``{case, metric, ours, reference, ratio, unit, seeds, command}`` are merged into
``bench/results/data.json`` (records of other cases are kept). ``--smoke`` trains on tiny subsets
for a few steps into ``bench/work/knowledge-smoke`` and writes its records there, never into
``bench/results``: smoke numbers check the plumbing, they measure nothing.
Run: ``python bench/knowledge.py [--cases inject masking] [--smoke]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "data.json"
GRAPH = "builtin:ncbi-disease/knowledge.tsv"
NER_RECIPE = "bench/recipes/methods-ncbi.yaml"
DAPT_RECIPE = "bench/recipes/dapt-pubmed-minilm.yaml"
CLI = [sys.executable, "-m", "domaintune.cli"]
SMOKE = {"train": 160, "dev": 48, "test": 48, "docs": 40, "dapt_steps": 4, "ner_steps": 12}
FRESH = False


def conll_head(source: Path, target: Path, sentences: int) -> Path:
    """The first ``sentences`` sentences of a CoNLL file."""
    blocks = source.read_text(encoding="utf-8").strip().split("\n\n")[:sentences]
    target.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return target


def data_files(work: Path, smoke: bool) -> dict[str, Path]:
    """ncbi-disease splits and the DAPT text: the shared files, or tiny heads of them."""
    ncbi = SHARED / "ncbi-disease"
    files = {s: ncbi / f"{s}.conll" for s in ("train", "dev", "test")}
    files["pubmed"] = SHARED / "pubmed-abstracts" / "train.txt"
    if not smoke:
        return files
    folder = work / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        files[split] = conll_head(files[split], folder / f"{split}.conll", SMOKE[split])
    docs = files["pubmed"].read_text(encoding="utf-8").splitlines()[: SMOKE["docs"]]
    files["pubmed"] = folder / "pubmed.txt"
    files["pubmed"].write_text("\n".join(docs) + "\n", encoding="utf-8")
    return files


def ner_data(files: dict[str, Path]) -> list[str]:
    """Overrides pointing the NER recipe at ``files``."""
    return [
        f"data.train={files['train']}",
        f"data.validation={files['dev']}",
        f"data.test={files['test']}",
    ]


def train(job: tuple[list[str], Path, int]) -> Path | None:
    """Run one ``domaintune train`` unless its run folder finished; the folder, or None."""
    overrides, folder, threads = job
    if (folder / "results.json").is_file() and not FRESH:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*CLI, "train", *overrides, f"train.threads={threads}", "-o", str(folder), "--overwrite"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with folder.with_suffix(".log").open("w") as log:
        done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    print(f"  rc {done.returncode}  {folder.relative_to(ROOT)}", flush=True)
    return folder if done.returncode == 0 else None


def run_all(jobs: list[tuple[list[str], Path, int]], parallel: int) -> None:
    """Run the jobs, ``parallel`` at a time; stop when one failed."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        failed = [job[1] for job, out in zip(jobs, pool.map(train, jobs), strict=True) if not out]
    if failed:
        sys.exit(f"benchmark runs failed: {', '.join(map(str, failed))} (see their .log)")


def results(folder: Path) -> dict[str, Any]:
    """A run folder's results.json."""
    return json.loads((folder / "results.json").read_text())


def graph_names() -> set[str]:
    """The graph's names in matching form (case and punctuation spacing ignored)."""
    from domaintune.data.knowledge_graph import matching_form, read_graph
    from domaintune.data.readers import resolve_path

    return {matching_form(h)[0] for h in read_graph(resolve_path(GRAPH)).facts}


def leakage(files: dict[str, Path]) -> dict[str, Any]:
    """How many dev/test mentions (names, occurrences) the train-built graph holds."""
    from build_ncbi_knowledge import mentions

    from domaintune.data.knowledge_graph import matching_form

    names = graph_names()
    out: dict[str, Any] = {"graph_names": len(names), "built_from": "ncbi-disease train only"}
    for split in ("dev", "test"):
        found = [matching_form(m)[0] for m in mentions(files[split])]
        unique = set(found)
        out[split] = {
            "mentions": len(found),
            "mentions_in_graph": sum(m in names for m in found),
            "names": len(unique),
            "names_in_graph": len(unique & names),
        }
    return out


def gold_spans(path: Path) -> list[list[tuple[int, int, str]]]:
    """Gold mentions of each sentence as character spans of its tokens joined by spaces."""
    from domaintune.config.sections import DataConfig
    from domaintune.data.pipeline import clean_example
    from domaintune.data.readers import iter_conll

    out = []
    for example in iter_conll(path, DataConfig(train=str(path)), True):
        clean_example(example)  # as prediction cleans it, so offsets agree
        spans: list[tuple[int, int, str]] = []
        pos = 0
        for token, tag in zip(example["tokens"], example["tags"], strict=True):
            if tag.startswith("B-") or (tag.startswith("I-") and not spans):
                spans.append((pos, pos + len(token), ""))
            elif tag.startswith("I-"):
                spans[-1] = (spans[-1][0], pos + len(token), "")
            pos += len(token) + 1
        text = " ".join(example["tokens"])
        out.append([(s, e, text[s:e]) for s, e, _ in spans])
    return out


def dictionary_tagger(test: Path) -> dict[str, float]:
    """The graph alone as a tagger: linked spans against gold mentions (exact spans)."""
    from domaintune.config.knowledge import KnowledgeConfig
    from domaintune.config.sections import DataConfig
    from domaintune.data.knowledge import injector_for
    from domaintune.data.pipeline import clean_example
    from domaintune.data.readers import iter_conll

    linker = injector_for(KnowledgeConfig(file=GRAPH)).linker
    tp = fp = fn = 0
    examples = list(iter_conll(test, DataConfig(train=str(test)), True))
    for gold, example in zip(gold_spans(test), examples, strict=True):
        clean_example(example)
        found = {(s, e) for s, e, _ in linker.link(" ".join(example["tokens"]))}
        spans = {(s, e) for s, e, _ in gold}
        tp, fp, fn = tp + len(found & spans), fp + len(found - spans), fn + len(spans - found)
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4)}


def recall_by_graph(run: Path, test: Path, names: set[str]) -> dict[str, float]:
    """Recall on test mentions whose name is in the graph, and on those that are not."""
    from domaintune import api
    from domaintune.data.knowledge_graph import matching_form

    rows = api.predict(run, test)
    hits = {True: [0, 0], False: [0, 0]}
    for row, gold in zip(rows, gold_spans(test), strict=True):
        predicted = {(e["start"], e["end"]) for e in row["entities"]}
        for start, end, text in gold:
            seen = matching_form(text)[0] in names
            hits[seen][0] += (start, end) in predicted
            hits[seen][1] += 1
    return {
        "recall_in_graph": hits[True][0] / max(1, hits[True][1]),
        "recall_not_in_graph": hits[False][0] / max(1, hits[False][1]),
    }


def mean_record(case: str, metric: str, ours: list[float], ref: list[float], **extra: Any) -> dict:
    """One record of seed means, with the spread and per-seed values."""
    std = statistics.stdev if len(ours) > 1 else (lambda _: 0.0)
    o, r = statistics.mean(ours), statistics.mean(ref)
    return {
        "case": case,
        "metric": metric,
        "ours": round(o, 4),
        "reference": round(r, 4),
        "ratio": round(o / r, 3) if r else None,
        "unit": "score",
        **extra,
        "ours_std": round(std(ours), 4),
        "reference_std": round(std(ref), 4),
        "ours_per_seed": [round(x, 4) for x in ours],
        "reference_per_seed": [round(x, 4) for x in ref],
    }


def ner_limits(smoke: bool) -> list[str]:
    """Smoke runs stop after a few steps."""
    return [f"train.max_steps={SMOKE['ner_steps']}"] if smoke else []


def case_inject(work: Path, files: dict[str, Path], seeds: list[int], args: Any) -> list[dict]:
    """ncbi-disease NER with and without the shipped graph's facts."""
    base = [NER_RECIPE, *ner_data(files), *ner_limits(args.smoke)]
    variants = {"with": [f"data.knowledge.file={GRAPH}"], "without": []}
    jobs = [
        ([*base, *extra, f"train.seed={s}"], work / "inject" / f"{name}-s{s}", args.threads)
        for s in seeds
        for name, extra in variants.items()
    ]
    run_all(jobs, args.jobs)
    names = graph_names()
    scores: dict[str, dict[str, list[float]]] = {n: {} for n in variants}
    for name in variants:
        for s in seeds:
            folder = work / "inject" / f"{name}-s{s}"
            test = results(folder)["test"]
            per = {k: test[f"entity_{k}"] for k in ("f1", "precision", "recall")}
            per.update(recall_by_graph(folder, files["test"], names))
            for key, value in per.items():
                scores[name].setdefault(key, []).append(value)
    linked = results(work / "inject" / f"with-s{seeds[0]}")["data"]["knowledge"]
    command = (
        f"python bench/knowledge.py --cases inject{' --smoke' if args.smoke else ''} (domaintune "
        f"train {NER_RECIPE} train.seed=S [data.knowledge.file={GRAPH}]; --jobs {args.jobs}, "
        f"{args.threads} thread(s) each)"
    )
    extra = {"seeds": seeds, "command": command}
    w, wo = scores["with"], scores["without"]
    return [
        mean_record(
            "knowledge-inject-ncbi-minilm",
            "test_entity_f1_mean",
            w["f1"],
            wo["f1"],
            **extra,
            graph={k: linked[k] for k in ("file", "sha256", "entities", "triples", "relations")},
            leakage=leakage(files),
            dictionary_only_test=dictionary_tagger(files["test"]),
            linked_test_sentences=linked["splits"]["test"],
            linked_train_sentences=linked["splits"]["train"],
        ),
        *[
            mean_record(
                "knowledge-inject-ncbi-minilm", f"test_{key}_mean", w[key], wo[key], **extra
            )
            for key in ("precision", "recall", "recall_in_graph", "recall_not_in_graph")
        ],
    ]


def case_masking(work: Path, files: dict[str, Path], seeds: list[int], args: Any) -> list[dict]:
    """DAPT with whole-word vs knowledge-aware masking, then NER from each, every seed."""
    dapt = [DAPT_RECIPE, f"data.train={files['pubmed']}", f"train.seed={seeds[0]}"]
    if args.smoke:
        dapt += [f"train.max_steps={SMOKE['dapt_steps']}", "data.reference_text=null"]
        dapt += ["data.test=null", "data.split.test=0.1"]
    variants = {
        "knowledge": ["task.knowledge_masking=true", f"data.knowledge.file={GRAPH}"],
        "whole-word": ["task.whole_word_masking=true"],
    }
    run_all(
        [([*dapt, *v], work / "dapt" / n, args.threads) for n, v in variants.items()], args.jobs
    )
    base = [NER_RECIPE, *ner_data(files), *ner_limits(args.smoke)]
    jobs = [
        (
            [*base, f"model.init_from={work / 'dapt' / n / 'final'}", f"train.seed={s}"],
            work / "masking-ner" / f"{n}-s{s}",
            args.threads,
        )
        for s in seeds
        for n in variants
    ]
    run_all(jobs, args.jobs)
    f1 = {
        n: [results(work / "masking-ner" / f"{n}-s{s}")["test"]["entity_f1"] for s in seeds]
        for n in variants
    }
    dapt_knowledge = results(work / "dapt" / "knowledge")
    command = (
        f"python bench/knowledge.py --cases masking{' --smoke' if args.smoke else ''} (DAPT: "
        f"domaintune train {DAPT_RECIPE} with task.whole_word_masking=true (reference) or "
        f"task.knowledge_masking=true data.knowledge.file={GRAPH} (ours), seed {seeds[0]}; then "
        f"{NER_RECIPE} model.init_from=<DAPT>/final train.seed=S)"
    )
    return [
        mean_record(
            "knowledge-masking-dapt-ncbi-minilm",
            "test_entity_f1_mean",
            f1["knowledge"],
            f1["whole-word"],
            seeds=seeds,
            command=command,
            dapt_steps=dapt_knowledge["train"]["steps"],
            dapt_linked=dapt_knowledge["data"]["knowledge"]["splits"]["train"],
        )
    ]


def main() -> None:
    """Run the chosen cases and merge their records into the results file."""
    global FRESH
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", default=["inject", "masking"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once")
    parser.add_argument("--threads", type=int, default=1, help="threads per training")
    parser.add_argument("--smoke", action="store_true", help="tiny subsets, a few steps")
    parser.add_argument("--fresh", action="store_true", help="retrain finished runs")
    args = parser.parse_args()
    FRESH = args.fresh
    work = ROOT / "bench" / "work" / ("knowledge-smoke" if args.smoke else "knowledge")
    target = work / "data.json" if args.smoke else RESULTS
    files = data_files(work, args.smoke)
    new: list[dict[str, Any]] = []
    for case in args.cases:
        print(f"[{case}]", flush=True)
        rows = {"inject": case_inject, "masking": case_masking}[case](work, files, args.seeds, args)
        new += [{**r, "smoke": True} if args.smoke else r for r in rows]
    done = {r["case"] for r in new}
    old = json.loads(target.read_text()) if target.is_file() else []
    records = [r for r in old if r["case"] not in done] + new
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(records, indent=1) + "\n")
    for r in new:
        print(f"  {r['case']:36s} {r['metric']:28s} ours {r['ours']} ref {r['reference']}")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
