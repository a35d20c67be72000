"""The evaluate stage of a run: score the final model on validation and test.

``api.run`` calls ``final_scores`` once training is over, on the model as it is saved (merged
where the method merges), so the reported metrics are the exported model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from domaintune.data.encode import Encoded
from domaintune.data.pipeline import RawSplits


def split_metrics(
    module: nn.Module,
    task: Any,
    encoded: dict[str, Encoded],
    raw: RawSplits,
    split: str,
    tokenizer: Any,
    recipe: Any,
    accelerator: Any,
    *,
    tune: bool = False,
) -> dict[str, Any]:
    """The task's metrics of ``module`` on one split (``tune``: validation may tune thresholds)."""
    from domaintune.tasks.inference import infer

    outputs = infer(
        module,
        task,
        encoded[split],
        recipe.train.eval_batch_size,
        tokenizer.pad_token_id,
        accelerator.device,
        accelerator,
    )
    return task.metrics(outputs, raw.splits[split], tune=tune, encoded=encoded[split])  # type: ignore[no-any-return]


def final_scores(
    module: nn.Module,
    generator: nn.Module,
    task: Any,
    encoded: dict[str, Encoded],
    raw: RawSplits,
    tokenizer: Any,
    recipe: Any,
    accelerator: Any,
    run_dir: Path,
) -> dict[str, dict[str, Any]]:
    """Metrics of every labelled split the run has (``validation``, ``test``).

    Args:
        module: The task's wrapper around the final model (what ``infer`` runs).
        generator: The final model itself (what a generation task decodes with).
        task: The run's task.
        encoded: Encoded splits.
        raw: The examples of each split.
        tokenizer: The run's tokenizer.
        recipe: The run's recipe (data.max_length, train.eval_batch_size).
        accelerator: The run's Accelerator.
        run_dir: The run folder (generation writes its predictions there).

    Returns:
        ``{split: {metric: value}}``; the validation metrics may tune decision thresholds.

    """
    scores: dict[str, dict[str, Any]] = {
        split: split_metrics(
            module,
            task,
            encoded,
            raw,
            split,
            tokenizer,
            recipe,
            accelerator,
            tune=split == "validation",
        )
        for split in ("validation", "test")
        if split in encoded and raw.splits[split]
    }
    generate = getattr(task, "generation_scores", None)  # generation: decode, score, write
    if generate is not None:
        for split, split_scores in scores.items():
            split_scores.update(
                generate(
                    generator,
                    split,
                    raw.splits[split],
                    tokenizer,
                    recipe.data.max_length,
                    recipe.train.eval_batch_size,
                    accelerator,
                    run_dir,
                )
            )
    return scores


def results_record(
    recipe: Any,
    task: Any,
    metric: str,
    scores: dict[str, dict[str, Any]],
    train: dict[str, Any],
    raw: RawSplits,
    *,
    evaluations: list[dict[str, Any]],
    peak_rss_mib: float,
    lm_train: tuple[Encoded, Any] | None = None,
    sections: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's ``results.json``: metrics, training record, data and the optional reports.

    Args:
        recipe: The run's recipe.
        task: The run's task.
        metric: The metric the run selected its best checkpoint by.
        scores: ``final_scores``'s metrics.
        train: The loop's record (``LoopResult.record``).
        raw: The examples of each split (their statistics and origins).
        evaluations: The loop's evaluations during training.
        peak_rss_mib: The process's peak resident memory.
        lm_train: Language modelling: the encoded train split and the loop result, for the
            tokens-per-second figure.
        sections: More sections: forgetting, before and vocabulary are left out when None;
            shift is always written.

    """
    results: dict[str, Any] = {
        "metric": metric,
        "test": scores.get("test", {}),
        "validation": scores.get("validation", {}),
        "train": train,
        "peak_rss_mib": round(peak_rss_mib, 1),
        "data": {**raw.stats, "origins": raw.origins, "labels": task.state().get("labels")},
        "model": recipe.model.name if recipe.model.init_from is None else recipe.model.init_from,
        "evaluations": evaluations,
    }
    if lm_train is not None:
        encoded, loop = lm_train
        tokens = sum(encoded.lengths)
        epochs = loop.train_examples / max(1, len(encoded))
        seconds = loop.train_seconds
        train["tokens_per_second"] = round(tokens * epochs / seconds if seconds else 0.0, 1)
        train["objective"] = task.state()["objective"]
    results.update({k: v for k, v in (sections or {}).items() if v is not None or k == "shift"})
    return results
