"""Find the tensor a forward hook recorded for the loop's own forward on a batch.

Objectives hook the model (the embeddings, the encoder) and record what every training forward
passed through it, other objectives' forwards included; ``loss`` then picks the first forward
on the batch's ``input_ids`` since its last call, i.e. the loop's clean forward.
"""

from __future__ import annotations

from typing import Any

import torch


def first_forward(seen: list[tuple[Any, torch.Tensor]], input_ids: torch.Tensor) -> torch.Tensor:
    """The tensor of the first ``(ids, tensor)`` record whose ids are ``input_ids``.

    The model passes the batch's tensor object down unchanged, so identity finds it; equal
    values are the fallback for wrappers that copy it.
    """
    for ids, tensor in seen:
        if ids is input_ids:
            return tensor
    for ids, tensor in seen:
        same = isinstance(ids, torch.Tensor) and ids.shape == input_ids.shape
        if same and torch.equal(ids, input_ids):
            return tensor
    raise RuntimeError(
        "no training forward was seen for this batch: the model must embed input_ids with "
        "get_input_embeddings() and run its encoder on them"
    )
