"""The test split scored before training, for before/after comparisons of generation runs.

``task.evaluate_before: true`` (generation) scores the model as loaded, with the method applied
and nothing trained yet (a fresh LoRA update is zero, so this is the base model): perplexity on
the references and, where the task generates, the generation metrics, with the predictions in
``predictions-test-before.jsonl`` beside the final ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from domaintune.data.encode import Encoded
from domaintune.data.pipeline import RawSplits


def evaluate_before(
    module: torch.nn.Module,
    model: torch.nn.Module,
    task: Any,
    encoded: dict[str, Encoded],
    raw: RawSplits,
    tokenizer: Any,
    recipe: Any,
    accelerator: Any,
    run_dir: Path,
) -> dict[str, Any]:
    """Test metrics of the untrained model.

    Args:
        module: The module the loop trains (the task's wrapper around ``model``).
        model: The model with the method applied (what generates).
        task: The run's task.
        encoded: Encoded splits.
        raw: The examples of each split.
        tokenizer: The run's tokenizer.
        recipe: The run's recipe (data.max_length, train.eval_batch_size).
        accelerator: The run's Accelerator.
        run_dir: The run folder (where the predictions go).

    Returns:
        ``{"test": {metric: value}}``, empty when the run has no test split.

    """
    from domaintune.evaluation.final import split_metrics

    if "test" not in encoded or not raw.splits.get("test"):
        return {}
    model.to(accelerator.device)
    scores = split_metrics(module, task, encoded, raw, "test", tokenizer, recipe, accelerator)
    generate = getattr(task, "generate_and_score", None)
    if generate is not None and "test" in task.cfg.generate_splits:
        was_training = model.training
        model.eval()
        scores.update(
            generate(
                model,
                raw.splits["test"],
                tokenizer,
                recipe.data.max_length,
                recipe.train.eval_batch_size,
                accelerator,
                run_dir / "predictions-test-before.jsonl",
            )
        )
        model.train(was_training)
    return {"test": scores}
