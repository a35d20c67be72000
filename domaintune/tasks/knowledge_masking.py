"""Knowledge-aware masking for MLM: linked entity mentions are masked first, each one whole.

Encoding turns each mention (``example["mentions"]``, character spans from
``data/knowledge.py``) into one masking unit: its tokens share one unit and are flagged as
entity tokens. At collation, each block masks ``round(mask_probability x candidate tokens)``
tokens (at least one): entity units in random order first, then whole words in random order,
skipping a unit that would overshoot the budget (as Hugging Face's whole-word collator does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def mention_units(
    starts: np.ndarray, offsets: Sequence[tuple[int, int]], mentions: list[list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Word-start flags with every mention as one unit, and the entity flag of each token.

    Args:
        starts: 1 where a token begins a word (whole-word masking's units).
        offsets: Each token's character span in the document.
        mentions: ``[start, end]`` character spans of the linked mentions, in order.

    Returns:
        The new start flags and the entity flags (int8 arrays as long as ``starts``).

    """
    starts = starts.copy()
    entity = np.zeros(len(starts), dtype=np.int8)
    bounds = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    real = bounds[:, 1] > bounds[:, 0]  # special tokens have empty spans
    for begin, end in mentions:
        inside = np.flatnonzero(real & (bounds[:, 0] < end) & (bounds[:, 1] > begin))
        if not len(inside):
            continue
        entity[inside] = 1
        starts[inside] = 0
        starts[inside[0]] = 1  # one unit per mention ...
        after = inside[-1] + 1
        if after < len(starts) and real[after]:
            starts[after] = 1  # ... and the token after it starts a new one
    return starts, entity


def choose_units(
    candidate: torch.Tensor,
    unit: torch.Tensor,
    draws: torch.Tensor,
    entity: torch.Tensor,
    probability: float,
) -> torch.Tensor:
    """Which positions to mask: entity units first, then other units, up to the budget.

    Args:
        candidate: (B, T) bool, positions that may be masked (no specials, no padding).
        unit: (B, T) the unit index of each position within its block.
        draws: (B, T) uniform draws, equal across a unit's positions (the unit's order).
        entity: (B, T) 1 where the position belongs to a linked mention.
        probability: Share of each block's candidate positions to mask.

    Returns:
        (B, T) bool mask of the chosen positions.

    """
    chosen = torch.zeros_like(candidate)
    cand, units = candidate.numpy(), unit.clamp(min=0).numpy()
    keys, ents = draws.numpy(), entity.numpy()
    for row in range(cand.shape[0]):
        where = np.flatnonzero(cand[row])
        if not len(where):
            continue
        budget = max(1, round(probability * len(where)))
        ids = units[row, where]
        count = int(ids.max()) + 1
        sizes = np.bincount(ids, minlength=count)
        is_entity = np.bincount(ids, weights=ents[row, where], minlength=count) > 0
        order_key = np.zeros(count)
        order_key[ids] = keys[row, where] + np.where(is_entity[ids], 0.0, 1.0)
        picked = np.zeros(count, dtype=bool)
        total = 0
        for u in np.argsort(order_key, kind="stable"):
            if sizes[u] and total + sizes[u] <= budget:
                picked[u] = True
                total += int(sizes[u])
            if total >= budget:
                break
        chosen[row, torch.from_numpy(where[picked[ids]])] = True
    return chosen
