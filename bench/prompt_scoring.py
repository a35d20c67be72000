"""Decoder label scoring speed: SmolLM2 in-context classification of nicta-piboso sentences.

The prompt of ``method: prompting`` with ``mode: in_context`` on nicta-piboso: the instruction,
2 demonstrations for each of the 6 labels (625 tokens before the sentence) and the sentence;
every label is scored by the log-probability of its tokens as the assistant's answer, with
contextual calibration. Three ways to compute the same scores, timed side by side in one
process on the same batches (``predict_outputs`` of a zero-training run folder, one thread):

- ``reference``: every prompt whole, and one copy of its KV cache per label (the code before);
- ``side-by-side``: every prompt whole, all labels in one row on one cache (4D mask);
- ``ours``: the shared prefix once per batch, then the labels side by side (the default).

Also reports the largest difference of the label probabilities and the argmax agreement with
the reference, in fp32 (should be rounding only) and under bf16 autocast where the CPU has
bf16 units. Writes ``bench/results/prompting.json``.
Run: ``python bench/prompt_scoring.py [--sentences 64] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NICTA = ROOT.parent / "shared" / "data" / "nicta-piboso"
INSTRUCTION = "Classify the role of this sentence from a medical abstract as one of: {labels}."


def build_run(folder: Path, sentences: int) -> Path:
    """A finished zero-training in-context run folder (scores 8 dev sentences only)."""
    from domaintune import api

    rows = (NICTA / "dev.jsonl").read_text(encoding="utf-8").splitlines()[:8]
    dev = folder / "dev.jsonl"
    dev.write_text("\n".join(rows) + "\n", encoding="utf-8")
    method = (
        f'method={{name: prompting, mode: in_context, demonstrations: 2, instruction: "'
        f'{INSTRUCTION}", template: "Sentence: {{text}}"}}'
    )
    api.run(
        ROOT / "domaintune" / "recipes" / "prompting-smollm2-in-context.yaml",
        [
            f"data.train={NICTA / 'train.jsonl'}",
            f"data.validation={dev}",
            f"data.test={dev}",
            "data.max_length=1024",
            method,
            "data.few_shot={k: 8, seed: 1}",
        ],
        output_dir=folder / "run",
    )
    return folder / "run"


def timed(run: Path, examples: list[dict[str, Any]], variant: str, precision: str) -> Any:
    """(seconds, probabilities) of scoring ``examples`` the ``variant`` way."""
    import numpy as np

    from domaintune.deploy.load import open_predictor
    from domaintune.deploy.predict import predict_outputs
    from domaintune.models import prompt_scorers as scorers

    cls = scorers.LabelLikelihoodScorer
    shared, maskable = cls._shared_prefix, scorers.MASKABLE
    try:
        if variant != "ours":
            cls._shared_prefix = lambda self, ids, lengths: 0  # type: ignore[method-assign]
        if variant == "reference":
            scorers.MASKABLE = ()
        predictor = open_predictor(run, precision=precision)
        start = time.perf_counter()
        outputs, _ = predict_outputs(predictor, [dict(e) for e in examples])
        return time.perf_counter() - start, np.stack(outputs)
    finally:
        cls._shared_prefix, scorers.MASKABLE = shared, maskable  # type: ignore[method-assign]


def main() -> None:
    """Time the three variants in fp32 and auto precision; write the records."""
    import torch

    from bench.foundation import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = (NICTA / "test.jsonl").read_text(encoding="utf-8").splitlines()[: args.sentences]
    examples = [json.loads(line) for line in lines]
    command = (
        f"python bench/prompt_scoring.py --sentences {args.sentences} --threads "
        f"{args.threads} ({machine()})"
    )
    records = []
    with tempfile.TemporaryDirectory(prefix="prompt-scoring-") as tmp:
        run = build_run(Path(tmp), args.sentences)
        for precision in ("fp32", "auto"):
            seconds, probs = {}, {}
            for variant in ("reference", "side-by-side", "ours"):
                seconds[variant], probs[variant] = timed(run, examples, variant, precision)
                print(f"{precision:5} {variant:13} {seconds[variant]:7.1f} s", flush=True)
            for variant in ("side-by-side", "ours"):
                gap = float(abs(probs[variant] - probs["reference"]).max())
                agree = float((probs[variant].argmax(1) == probs["reference"].argmax(1)).mean())
                case = f"smollm2-in-context-nicta-{args.sentences}-{precision}"
                records += [
                    {
                        "case": f"{case}-{variant}",
                        "metric": "scoring_seconds",
                        "ours": round(seconds[variant], 2),
                        "reference": round(seconds["reference"], 2),
                        "ratio": round(seconds["reference"] / seconds[variant], 2),
                        "unit": "s",
                        "seeds": [1],
                        "command": command,
                        "max_probability_gap": round(gap, 7),
                        "argmax_agreement": round(agree, 4),
                    }
                ]
                print(f"      {variant:13} max |dp| {gap:.2e}, argmax agreement {agree:.3f}")
    out = ROOT / "bench" / "results" / "prompting.json"
    out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"records written to {out}")


if __name__ == "__main__":
    main()
