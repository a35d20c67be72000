"""DAPT benchmark: domain-adaptive pretraining against a plain HF script and against no DAPT.

Cases (each side by side, one after the other, on this machine):
- ``mlm``: MiniLM masked-LM DAPT on pubmed-abstracts/train.txt, ours against
  ``bench/hf_mlm_reference.py`` (DataCollatorForLanguageModeling + BertForMaskedLM + Trainer):
  tokens/s, wall time, and perplexity on pubmed test.txt and WikiText-2, every model scored by
  the same function (``domaintune.evaluation.perplexity.text_perplexity``).
- ``ner``: ncbi-disease NER from the ``mlm`` case's DAPT model against NER from MiniLM, 3 seeds.
- ``zh``: chnsenticorp-htl-zh classification, packaged vocabulary against vocabulary expansion +
  TAPT on the training text (a pipeline), seeds as given.
- ``smollm``: SmolLM2-135M causal-LM DAPT (LoRA and full) on pubmed, perplexity before/after.

Writes bench/results/dapt.json (records ``{case, metric, ours, reference, ratio, unit, seeds,
command}``). Run: ``make bench`` or ``python bench/dapt.py --cases mlm ner zh smollm``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "work" / "dapt"
RESULTS = ROOT / "bench" / "results" / "dapt.json"
SHARED = ROOT.parent / "shared" / "data"
RECIPES = ROOT / "bench" / "recipes"
PUBMED_TEST = SHARED / "pubmed-abstracts" / "test.txt"
WIKITEXT = SHARED / "wikitext-2-raw" / "test.paragraphs.txt"
CLI = [sys.executable, "-m", "domaintune.cli"]


def machine() -> str:
    """Cores and bf16 support, which decide our precision."""
    from bench.foundation import machine as describe

    return describe()


def run(cmd: list[str], log: Path) -> float:
    """Print the command, then run it as the foundation benchmark does (logged, timed)."""
    from bench.foundation import run as run_logged

    print("  $", " ".join(cmd), flush=True)
    return run_logged(cmd, log)


def texts(path: Path) -> list[str]:
    """One document per non-empty line."""
    return [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]


def perplexities(model: str) -> dict[str, float]:
    """MLM/CLM perplexity of a model on pubmed test (all of it) and WikiText (50k tokens)."""
    from domaintune.evaluation.perplexity import text_perplexity

    return {
        "pubmed": text_perplexity(model, texts(PUBMED_TEST), max_tokens=None)["perplexity"],
        "wikitext": text_perplexity(model, texts(WIKITEXT), max_tokens=50_000)["perplexity"],
    }


def record(
    case: str,
    metric: str,
    ours: float,
    ref: float,
    unit: str,
    ratio: float,
    seeds: list[int],
    command: str,
    **extra: Any,
) -> dict[str, Any]:
    """One result record."""
    return {
        "case": case,
        "metric": metric,
        "ours": round(ours, 4),
        "reference": round(ref, 4),
        "ratio": round(ratio, 3),
        "unit": unit,
        "seeds": seeds,
        "command": command,
        **extra,
    }


def results_of(folder: Path) -> dict[str, Any]:
    """A run folder's results.json."""
    return json.loads((folder / "results.json").read_text())


# ------------------------------------------------------------------------------------- cases
def case_mlm(seed: int) -> list[dict[str, Any]]:
    """MiniLM MLM DAPT: ours against the plain Trainer script, same data, one after the other."""
    from domaintune.models.aliases import resolve_alias

    out = WORK / "mlm"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    recipe = RECIPES / "dapt-pubmed-minilm.yaml"
    run(
        [*CLI, "train", str(recipe), f"train.seed={seed}", "-o", str(out / "ours")],
        out / "ours.log",
    )
    ref_json = out / "reference.json"
    run(
        [
            sys.executable,
            "bench/hf_mlm_reference.py",
            "--train",
            str(SHARED / "pubmed-abstracts" / "train.txt"),
            "--model",
            str(resolve_alias("minilm")),
            "--output-dir",
            str(out / "reference"),
            "--result-json",
            str(ref_json),
            "--block-size",
            "128",
            "--batch-size",
            "32",
            "--lr",
            "5e-5",
            "--epochs",
            "1",
            "--seed",
            str(seed),
        ],
        out / "reference.log",
    )
    ours, ref = results_of(out / "ours"), json.loads(ref_json.read_text())
    base = perplexities("minilm")
    ours_ppl = perplexities(str(out / "ours" / "final"))
    ref_ppl = perplexities(ref["model_dir"])
    command = (
        f"python bench/dapt.py --cases mlm (ours: domaintune train "
        f"bench/recipes/dapt-pubmed-minilm.yaml, 3 epochs; reference: bench/hf_mlm_reference.py, "
        f"1 epoch, lr 5e-5, batch 32, 128-token blocks, fp32; {machine()}; ours ran in "
        f"{ours['train']['precision']}; perplexity: domaintune.evaluation.perplexity, 15% "
        f"content-seeded masks, pubmed test.txt all, WikiText-2 test first 50k tokens)"
    )
    case, s = "mlm-dapt-pubmed-minilm", [seed]
    o_tps, r_tps = ours["train"]["tokens_per_second"], ref["tokens_per_second"]
    o_sec, r_sec = ours["train"]["seconds"], ref["train_seconds"]
    rows = [
        record(
            case, "train_tokens_per_second", o_tps, r_tps, "tokens/s", o_tps / r_tps, s, command
        ),
        record(
            case,
            "train_wall_time",
            o_sec,
            r_sec,
            "s",
            r_sec / o_sec,
            s,
            command,
            ours_within_reference_time=o_sec <= r_sec,
        ),
        record(
            case,
            "peak_rss",
            ours["peak_rss_mib"],
            ref["peak_rss_mib"],
            "MiB",
            ref["peak_rss_mib"] / ours["peak_rss_mib"],
            s,
            command,
        ),
    ]
    for text in ("pubmed", "wikitext"):
        rows.append(
            record(
                case,
                f"{text}_mlm_perplexity",
                ours_ppl[text],
                ref_ppl[text],
                "perplexity",
                ref_ppl[text] / ours_ppl[text],
                s,
                command,
                before_dapt=round(base[text], 2),
            )
        )
    return rows


def case_ner(seeds: list[int]) -> list[dict[str, Any]]:
    """NCBI-disease NER from the DAPT model (mlm case) against NER from MiniLM."""
    dapt = WORK / "mlm" / "ours"
    if not (dapt / "final" / "config.json").is_file():
        sys.exit("the ner case needs the mlm case's DAPT model: run --cases mlm ner")
    out = WORK / "ner"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    recipe = RECIPES / "foundation-ncbi.yaml"
    f1: dict[str, list[float]] = {"dapt": [], "plain": []}
    for seed in seeds:
        for name, extra in (("plain", []), ("dapt", [f"model.init_from={dapt}"])):
            folder = out / f"{name}-{seed}"
            run(
                [*CLI, "train", str(recipe), f"train.seed={seed}", *extra, "-o", str(folder)],
                out / f"{name}-{seed}.log",
            )
            f1[name].append(results_of(folder)["test"]["entity_f1"])
    command = (
        "python bench/dapt.py --cases mlm ner (ours: bench/recipes/foundation-ncbi.yaml with "
        "model.init_from=<mlm case DAPT run>; reference: the same recipe from MiniLM; "
        f"{machine()})"
    )
    return [
        _mean_record(
            "ner-after-dapt-ncbi-minilm", "test_entity_f1", f1["dapt"], f1["plain"], seeds, command
        )
    ]


def case_zh(seeds: list[int], keep_finished: bool) -> list[dict[str, Any]]:
    """chnsenticorp: vocabulary expansion + TAPT, then classification, against no expansion."""
    out = WORK / "zh"
    if not keep_finished:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    acc: dict[str, list[float]] = {"vocab": [], "plain": []}
    unk: dict[str, Any] = {}
    for seed in seeds:
        plain = out / f"plain-{seed}"
        if not (keep_finished and (plain / "results.json").is_file()):
            shutil.rmtree(plain, ignore_errors=True)
            run(
                [
                    *CLI,
                    "train",
                    str(RECIPES / "chnsenticorp-minilm.yaml"),
                    f"train.seed={seed}",
                    "-o",
                    str(plain),
                ],
                out / f"plain-{seed}.log",
            )
        acc["plain"].append(results_of(plain)["test"]["accuracy"])
        piped = out / f"vocab-{seed}"
        if not (keep_finished and (piped / "classify" / "results.json").is_file()):
            shutil.rmtree(piped, ignore_errors=True)
            run(
                [
                    *CLI,
                    "train",
                    str(RECIPES / "chnsenticorp-vocab-pipeline.yaml"),
                    f"train.seed={seed}",
                    "-o",
                    str(piped),
                ],
                out / f"vocab-{seed}.log",
            )
        acc["vocab"].append(results_of(piped / "classify")["test"]["accuracy"])
        unk = results_of(piped / "tapt").get("vocabulary", {})
    command = (
        "python bench/dapt.py --cases zh (ours: domaintune train "
        "bench/recipes/chnsenticorp-vocab-pipeline.yaml = vocabulary expansion + TAPT 1 epoch, "
        "then bench/recipes/chnsenticorp-minilm.yaml; reference: chnsenticorp-minilm.yaml "
        f"alone; {machine()})"
    )
    before, after = unk.get("before", {}), unk.get("after", {})
    return [
        _mean_record(
            "zh-vocab-chnsenticorp-minilm",
            "test_accuracy",
            acc["vocab"],
            acc["plain"],
            seeds,
            command,
            added_tokens=unk.get("added"),
            unk_rate_before=before.get("unk_rate"),
            unk_rate_after=after.get("unk_rate"),
            unk_char_rate_before=before.get("unk_char_rate"),
            unk_char_rate_after=after.get("unk_char_rate"),
        ),
    ]


def case_smollm(seed: int, keep_finished: bool) -> list[dict[str, Any]]:
    """SmolLM2 causal-LM DAPT from the GGUF, LoRA and full: perplexity before/after, tokens/s."""
    out = WORK / "smollm"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in ("lora", "full"):
        recipe = RECIPES / (
            "dapt-pubmed-smollm2.yaml" if name == "lora" else "dapt-pubmed-smollm2-full.yaml"
        )
        folder = out / name
        if not (keep_finished and (folder / "results.json").is_file()):
            shutil.rmtree(folder, ignore_errors=True)
            run(
                [*CLI, "train", str(recipe), f"train.seed={seed}", "-o", str(folder)],
                out / f"{name}.log",
            )
        res = results_of(folder)
        command = (
            f"python bench/dapt.py --cases smollm (domaintune train "
            f"{recipe.relative_to(ROOT)}; {res['train']['steps']} steps of 8 x 256 tokens; "
            f"reference = the same model before DAPT; {machine()}; {res['train']['precision']})"
        )
        case = f"clm-dapt-pubmed-smollm2-{name}"
        for text, key in (("pubmed", "in_domain"), ("wikitext", "general")):
            f = res["forgetting"][key]
            rows.append(
                record(
                    case,
                    f"{text}_perplexity_after_vs_before",
                    f["after"],
                    f["before"],
                    "perplexity",
                    f["before"] / f["after"],
                    [seed],
                    command,
                )
            )
        tps = res["train"]["tokens_per_second"]
        rows.append(
            record(
                case,
                "train_tokens_per_second",
                tps,
                tps,
                "tokens/s",
                1.0,
                [seed],
                command,
                trainable_parameters=res["train"]["trainable_parameters"],
            )
        )
    return rows


def _mean_record(
    case: str,
    metric: str,
    ours: list[float],
    ref: list[float],
    seeds: list[int],
    command: str,
    **extra: Any,
) -> dict[str, Any]:
    mean_o, mean_r = statistics.mean(ours), statistics.mean(ref)
    std = statistics.stdev if len(ours) > 1 else (lambda _: 0.0)
    return record(
        case,
        f"{metric}_mean",
        mean_o,
        mean_r,
        "score",
        mean_o / mean_r,
        seeds,
        command,
        ours_std=round(std(ours), 4),
        reference_std=round(std(ref), 4),
        ours_per_seed=[round(x, 4) for x in ours],
        reference_per_seed=[round(x, 4) for x in ref],
        **extra,
    )


def main() -> None:
    """Run the chosen cases and write bench/results/dapt.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    cases = ["mlm", "ner", "zh", "smollm"]
    parser.add_argument("--cases", nargs="+", default=cases, choices=cases)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument(
        "--keep-finished",
        action="store_true",
        help="zh, smollm: reuse runs that finished (resume an interrupted benchmark)",
    )
    args = parser.parse_args()
    # keep the records of the cases not re-run now
    records: list[dict[str, Any]] = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for name in args.cases:
        print(f"[{name}]", flush=True)
        if name == "mlm":
            new = case_mlm(args.seeds[0])
        elif name == "ner":
            new = case_ner(args.seeds)
        elif name == "zh":
            new = case_zh(args.seeds, args.keep_finished)
        else:
            new = case_smollm(args.seeds[0], args.keep_finished)
        prefix = {"mlm": "mlm", "ner": "ner", "zh": "zh", "smollm": "clm"}[name]
        records = [r for r in records if str(r["case"]).split("-")[0] != prefix] + new
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(records, indent=1) + "\n")
        for r in new:
            print(
                f"  {r['case']:34s} {r['metric']:34s} ours {r['ours']:>10} "
                f"ref {r['reference']:>10} ratio {r['ratio']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
