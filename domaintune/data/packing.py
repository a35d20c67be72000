"""Causal-LM batches of SFT examples: padded, or packed several to a row without contamination.

Packed rows carry ``position_ids`` that restart at 0 for every example (and for the padding at
a row's end) and no ``attention_mask``: transformers 5 then builds a block-diagonal causal mask
from the position ids (``masking_utils.find_packed_sequence_indices``; eager and SDPA) or runs
flash attention's variable-length kernel, so no example attends to another. Targets are the
next tokens inside one example only: a position predicts the following token when that token is
learned (``loss_mask``) and belongs to the same example (its position id is not 0).
"""

from __future__ import annotations

import numpy as np
import torch

from domaintune.data.collate import pad_inputs


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: rows of example indices whose lengths add up to ``capacity`` at most.

    An example longer than ``capacity`` gets a row of its own. Hand-written: a few lines, and
    transformers' packing helpers (``DataCollatorWithFlattening``) put a whole batch in one row.
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def next_token_targets(
    ids: torch.Tensor, loss_mask: torch.Tensor, positions: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Flat target positions (into the B × T grid) and their labels, the next tokens."""
    valid = torch.zeros_like(loss_mask, dtype=torch.bool)  # (B, T)
    valid[:, :-1] = (loss_mask[:, 1:] > 0) & (positions[:, 1:] > 0)
    flat = valid.reshape(-1).nonzero().squeeze(1)  # (N,)
    return {"target_positions": flat, "labels": ids.reshape(-1)[flat + 1]}


def collate_padded(
    features: dict[str, list[np.ndarray]], pad_token_id: int
) -> dict[str, torch.Tensor]:
    """One example a row, right-padded, with an attention mask."""
    batch = pad_inputs({"input_ids": features["input_ids"]}, pad_token_id)
    mask = _pad([m.astype(np.int64) for m in features["loss_mask"]], batch["input_ids"].shape[1])
    positions = torch.cumsum(batch["attention_mask"], dim=1) - 1  # (B, T)
    batch.update(next_token_targets(batch["input_ids"], mask, positions))
    return batch


def collate_packed(
    features: dict[str, list[np.ndarray]], pad_token_id: int, capacity: int
) -> dict[str, torch.Tensor]:
    """Examples packed into rows of at most ``capacity`` tokens (or the longest example)."""
    ids, masks = features["input_ids"], features["loss_mask"]
    lengths = [len(a) for a in ids]
    rows = pack_rows(lengths, max(capacity, max(lengths)))
    width = max(sum(lengths[i] for i in row) for row in rows)
    input_ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    loss_mask = np.zeros((len(rows), width), dtype=np.int64)
    position_ids = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            n = lengths[i]
            input_ids[r, at : at + n] = ids[i]
            loss_mask[r, at : at + n] = masks[i]
            position_ids[r, at : at + n] = np.arange(n)
            at += n
        position_ids[r, at:] = np.arange(width - at)  # the padding is a sequence of its own
    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "position_ids": torch.from_numpy(position_ids),
    }
    batch.update(
        next_token_targets(batch["input_ids"], torch.from_numpy(loss_mask), batch["position_ids"])
    )
    return batch


def _pad(arrays: list[np.ndarray], width: int) -> torch.Tensor:
    out = np.zeros((len(arrays), width), dtype=np.int64)
    for row, a in enumerate(arrays):
        out[row, : len(a)] = a
    return torch.from_numpy(out)
