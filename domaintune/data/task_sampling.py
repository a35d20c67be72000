"""Multi-task batches: each batch holds one task's examples; tasks share an epoch by p_i.

The share of batches of task i is ``p_i ∝ n_i^(1/T)`` (n_i its training examples; T = 1 is
proportional sampling, T → ∞ uniform). Each epoch has as many batches as one pass over every
task (``Σ ceil(n_i / B)``); task i gets ``round(p_i × that)`` of them (largest remainders) in a
seeded random order, and inside a task batches are length-grouped by its own
``TrainBatchSampler``, which starts another pass over the task when one runs out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from domaintune.data.batching import TrainBatchSampler, sorted_batches


def task_shares(sizes: list[int], exponent: float) -> list[float]:
    """``p_i = n_i^e / Σ_j n_j^e`` with ``e = 1/T`` (0 gives uniform shares)."""
    weights = [float(n) ** exponent if n else 0.0 for n in sizes]
    total = sum(weights)
    return [w / total for w in weights]


def apportion(total: int, shares: list[float]) -> list[int]:
    """Whole counts summing to ``total``, each within 1 of ``total × share`` (largest remainders).

    Hand-written: numpy and the standard library have no apportionment; it is three lines.
    """
    exact = [total * s for s in shares]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


class MultiTaskBatchSampler:
    """Task-homogeneous training batches; the order is a pure function of seed and epoch.

    A resumed run asks for the same epoch and skips the batches already done, as with
    ``TrainBatchSampler``.
    """

    def __init__(
        self,
        task_ids: list[int],
        lengths: list[int],
        batch_size: int,
        seed: int,
        exponent: float,
        group_by_length: bool = True,
        mega_batch_factor: int = 50,
    ) -> None:
        """Build the per-task samplers over the examples of each task id (0 .. K-1)."""
        tasks = max(task_ids) + 1 if task_ids else 0
        self.members = [[j for j, t in enumerate(task_ids) if t == i] for i in range(tasks)]
        self.seed = seed
        self.epoch = 0
        self.samplers = [
            TrainBatchSampler(
                [lengths[j] for j in members],
                batch_size,
                seed * 1009 + 7 * i,  # one stream per task, never the same as another's
                group_by_length,
                mega_batch_factor,
            )
            for i, members in enumerate(self.members)
        ]
        self.shares = task_shares([len(m) for m in self.members], exponent)
        self.total = sum(len(s) for s in self.samplers)
        self.counts = apportion(self.total, self.shares)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose batch order to produce."""
        self.epoch = epoch

    def _task_batches(self, task: int) -> list[list[int]]:
        """``counts[task]`` batches of one task (global indices), passes seeded by the epoch."""
        sampler, members = self.samplers[task], self.members[task]
        out: list[list[int]] = []
        rounds = 0
        while len(out) < self.counts[task] and members:
            sampler.set_epoch(self.epoch * 1000 + rounds)
            out += [[members[j] for j in batch] for batch in sampler.batches()]
            rounds += 1
        return out[: self.counts[task]]

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, tasks interleaved in a seeded random order."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        labels = [i for i, n in enumerate(self.counts) for _ in range(n)]
        order = [labels[k] for k in torch.randperm(len(labels), generator=generator).tolist()]
        streams = [iter(self._task_batches(i)) for i in range(len(self.counts))]
        return [next(streams[i]) for i in order]

    def __iter__(self) -> Iterator[list[int]]:
        """Iterate over the current epoch's batches."""
        return iter(self.batches())

    def __len__(self) -> int:
        """Batches per epoch: one pass over every task."""
        return self.total


def grouped_sorted_batches(
    task_ids: list[int], lengths: list[int], batch_size: int
) -> list[list[int]]:
    """Inference batches sorted by length inside each task (a batch never mixes tasks)."""
    out: list[list[int]] = []
    for task in sorted(set(task_ids)):
        members = [j for j, t in enumerate(task_ids) if t == task]
        for batch in sorted_batches([lengths[j] for j in members], batch_size):
            out.append([members[j] for j in batch])
    return out
