"""Batched inference with length-sorted batches, sharded over processes when there are several."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from domaintune.data.batching import sorted_batches
from domaintune.data.encode import Encoded
from domaintune.tasks.protocol import Task


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch without ``labels`` (tasks compute their own loss)."""
    return {k: v for k, v in batch.items() if k != "labels"}


def infer(
    model: nn.Module,
    task: Task,
    encoded: Encoded,
    batch_size: int,
    pad_token_id: int,
    device: torch.device | str = "cpu",
    accelerator: Any = None,
) -> list[np.ndarray]:
    """Per-example task outputs, in the input order.

    Batches are sorted by length so that padding is minimal; with an ``accelerator`` of several
    processes, each runs every N-th batch and the results are gathered on all of them.
    """
    own_batches = getattr(task, "eval_batches", None)  # a task may group its batches itself
    batches = (
        own_batches(encoded, batch_size)
        if own_batches is not None
        else sorted_batches(encoded.lengths, batch_size)
    )
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    results: list[tuple[int, np.ndarray]] = []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for indices in batches[rank::world]:
            sub = encoded.subset(indices)
            batch = {k: v.to(device) for k, v in task.collate(sub.features, pad_token_id).items()}
            if accelerator is not None:
                with accelerator.autocast():
                    logits = model(**model_inputs(batch)).logits
            else:
                logits = model(**model_inputs(batch)).logits
            results.extend(zip(indices, task.outputs(logits, batch), strict=True))
    model.train(was_training)
    if world > 1:
        from accelerate.utils import gather_object

        results = gather_object(results)
    ordered: list[Any] = [None] * len(encoded)
    for index, output in results:
        ordered[index] = output
    return ordered
