"""Pad ragged encoded examples into a batch of tensors."""

from __future__ import annotations

import numpy as np
import torch


def pad_feature(arrays: list[np.ndarray], value: int | float) -> torch.Tensor:
    """Right-pad 1-D arrays to the longest one: (B, T)."""
    longest = max(len(a) for a in arrays)
    out = np.full((len(arrays), longest), value, dtype=arrays[0].dtype)
    for row, a in enumerate(arrays):
        out[row, : len(a)] = a
    return torch.from_numpy(out)


def pad_inputs(features: dict[str, list[np.ndarray]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad ``input_ids`` (and ``token_type_ids`` if present) and build the attention mask.

    Hand-written rather than ``DataCollatorWithPadding``: the examples are already ids in numpy,
    and padding them directly avoids the tokenizer's per-example Python round trip.
    """
    ids = features["input_ids"]
    batch = {"input_ids": pad_feature(ids, pad_token_id).long()}  # (B, T)
    mask = np.zeros(batch["input_ids"].shape, dtype=np.int64)
    for row, a in enumerate(ids):
        mask[row, : len(a)] = 1
    batch["attention_mask"] = torch.from_numpy(mask)  # (B, T)
    if "token_type_ids" in features:
        batch["token_type_ids"] = pad_feature(features["token_type_ids"], 0).long()  # (B, T)
    return batch
