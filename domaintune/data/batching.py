"""Batch samplers: length-grouped batches for training, length-sorted batches for inference."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class TrainBatchSampler(Sampler[list[int]]):
    """Yield training batches, reshuffled each epoch from ``seed + epoch``.

    With ``group_by_length`` the indices are shuffled, cut into mega-batches of
    ``mega_batch_factor`` batches and sorted by length inside each (transformers'
    ``get_length_grouped_indices``); the batches are then shuffled so that lengths do not run in
    waves. Padding, and therefore compute, drops sharply against random batches.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
        mega_batch_factor: int = 50,
    ) -> None:
        """Build a sampler over examples with the given token ``lengths``."""
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.mega_batch_factor = mega_batch_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose batch order to produce."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, in order."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        n = len(self.lengths)
        if self.group_by_length:
            mult = max(1, min(self.mega_batch_factor, n // (self.batch_size * 4) or 1))
            order = get_length_grouped_indices(self.lengths, self.batch_size, mult, generator)
        else:
            order = torch.randperm(n, generator=generator).tolist()
        chunks = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.group_by_length:
            perm = torch.randperm(len(chunks), generator=generator).tolist()
            chunks = [chunks[i] for i in perm]
        return chunks

    def __iter__(self) -> Iterator[list[int]]:
        """Iterate over the current epoch's batches."""
        return iter(self.batches())

    def __len__(self) -> int:
        """Number of batches per epoch."""
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Batches of indices sorted by decreasing length, for evaluation and prediction."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
