"""Metrics of a finished run on a labelled file (``domaintune evaluate``).

A generation run also generates text for the file (``eval-<file stem>-predictions.jsonl``).

The examples go through the prediction path of ``deploy/predict.py`` (cleaning, encoding,
length-sorted batches, the task's outputs), with the run's PyTorch model in fp32 and the module
the training loop evaluated (a language model projects only its target positions; the CRF
tagger decodes), so a run evaluated on its own test file reproduces its test metrics.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domaintune.data.pipeline import RawSplits
from domaintune.data.readers import read_split
from domaintune.deploy.load import LoadedRun, Predictor, from_run, load_run
from domaintune.deploy.predict import predict_outputs

if TYPE_CHECKING:
    import torch


def evaluate_run(run_dir: str | Path, data_file: str | Path) -> dict[str, Any]:
    """Metrics of a finished run on a labelled file; also saved as ``eval-<file stem>.json``."""
    loaded = load_run(run_dir)
    data = loaded.data.model_copy(update={"format": "auto"})
    examples = read_split(str(data_file), data, loaded.task.kind)
    check_eval_labels(
        loaded.task, RawSplits({"train": [], "test": examples}, {"test": str(data_file)})
    )
    outputs, encoded = predict_outputs(evaluation_predictor(loaded), examples)
    scores: dict[str, Any] = loaded.task.metrics(outputs, examples, encoded=encoded)
    generate = getattr(loaded.task, "generate_and_score", None)  # generation runs
    if generate is not None:
        scores.update(
            generate(
                loaded.model,
                examples,
                loaded.tokenizer,
                loaded.data.max_length,
                loaded.eval_batch_size,
                None,
                loaded.run.root / f"eval-{Path(data_file).stem}-predictions.jsonl",
            )
        )
    target = loaded.run.root / f"eval-{Path(data_file).stem}.json"
    target.write_text(
        json.dumps({"data": str(data_file), **scores}, indent=1, ensure_ascii=False),
        encoding="utf-8",
    )
    return scores


def evaluation_predictor(loaded: LoadedRun) -> Predictor:
    """The run's fp32 PyTorch predictor, through the module the training loop evaluates.

    That module (``task.wrap``) gets the whole batch but the labels, as
    ``tasks.inference.infer`` gives it in training: a language model needs its target positions.
    """
    import torch

    from domaintune.tasks.inference import model_inputs

    module = loaded.task.wrap(loaded.model).eval()

    def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return module(**model_inputs(batch)).logits  # (B, C), (B, T, C) or (N, V) targets

    return replace(from_run(loaded, "fp32"), logits=logits)


def check_eval_labels(task: Any, raw: RawSplits) -> None:
    """Tags converted to IOB2 and every gold label known to the run (one-line errors)."""
    from domaintune.data.labels import check_known_labels, to_iob2

    for i, example in enumerate(raw.splits["test"]):
        if task.kind == "tokens":
            example["tags"] = to_iob2(
                example["tags"], True, f"{raw.origins['test']}: sentence {i + 1}"
            )
    if task.kind == "tokens":
        known = {t[2:] for t in task.labels if t != "O"}
        labels = [t[2:] for e in raw.splits["test"] for t in e["tags"] if t != "O"]
        check_known_labels(labels, sorted(known), "evaluation", raw.origins["test"])
    elif getattr(task.cfg, "problem", "") == "single_label":
        check_known_labels(
            [str(e["label"]) for e in raw.splits["test"]],
            task.labels,
            "evaluation",
            raw.origins["test"],
        )
