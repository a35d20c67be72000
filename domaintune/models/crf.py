"""A linear-chain CRF over word emissions, with IOB2 transition constraints, and its tagger wrapper.

Hand-written: the PyPI options are unmaintained (``pytorch-crf`` 0.7.2, last released 2019;
``TorchCRF``, 2020) and neither supports transition constraints, which IOB2 decoding needs.

Shapes: ``B`` sequences, ``W`` positions (words, left-aligned: each row's valid positions are a
prefix given by ``mask``), ``C`` tags. The forward algorithm and Viterbi loop over time only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import ModelOutput

# What an illegal transition scores in the forward algorithm: finite, so log-space sums and their
# gradients stay finite, yet far below any learned score (exp(-1e4) is 0 in float32).
ILLEGAL = -1.0e4


def iob2_constraints(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed transitions (C, C) ``[from, to]`` and allowed first tags (C,) for IOB2 labels.

    ``I-X`` may only follow ``B-X`` or ``I-X``, and no sequence starts with ``I-X``; every other
    move (and any last tag) is allowed.
    """
    n = len(labels)
    allowed = torch.ones(n, n, dtype=torch.bool)  # (C, C)
    start = torch.ones(n, dtype=torch.bool)  # (C,)
    for j, tag in enumerate(labels):
        if tag.startswith("I-"):
            start[j] = False
            for i, previous in enumerate(labels):
                allowed[i, j] = previous in (f"B-{tag[2:]}", tag)
    return allowed, start


class CRF(nn.Module):
    """Linear-chain CRF: learned start, end and transition scores; fixed constraint masks.

    Illegal transitions (and illegal first tags) are not learned: their scores are replaced by
    ``ILLEGAL`` in the forward algorithm and by ``-inf`` in Viterbi, so they never decode
    whatever the learned values, and the learned entries there get no gradient.
    """

    allowed: torch.Tensor  # (C, C) bool buffer [from, to]
    allowed_start: torch.Tensor  # (C,) bool buffer

    def __init__(
        self,
        num_tags: int,
        allowed: torch.Tensor | None = None,
        allowed_start: torch.Tensor | None = None,
    ) -> None:
        """Zero-initialised scores (draws nothing from the RNG, so dropout streams are unchanged).

        Args:
            num_tags: Number of tags C.
            allowed: Bool (C, C) ``[from, to]`` of allowed transitions; None allows all.
            allowed_start: Bool (C,) of allowed first tags; None allows all.

        """
        super().__init__()
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.zeros(num_tags))  # (C,)
        self.end = nn.Parameter(torch.zeros(num_tags))  # (C,)
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (C, C) [from, to]
        if allowed is None:
            allowed = torch.ones(num_tags, num_tags, dtype=torch.bool)
        if allowed_start is None:
            allowed_start = torch.ones(num_tags, dtype=torch.bool)
        # Derived from the label list, not learned: kept out of the state dict.
        self.register_buffer("allowed", allowed.clone(), persistent=False)
        self.register_buffer("allowed_start", allowed_start.clone(), persistent=False)

    def _scores(self, illegal: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Start (C,) and transition (C, C) scores with illegal entries set to ``illegal``."""
        start = self.start.masked_fill(~self.allowed_start, illegal)
        transitions = self.transitions.masked_fill(~self.allowed, illegal)
        return start, transitions

    def log_likelihood(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Log-probability of ``tags`` per sequence (B,), in float32; empty rows give 0.

        Args:
            emissions: (B, W, C) scores, any float dtype.
            tags: (B, W) tag ids (any valid id on padding).
            mask: (B, W) bool, a left-aligned prefix per row.

        """
        emissions = emissions.float()  # (B, W, C): float32 even under bf16 autocast
        if emissions.shape[1] == 0:
            return emissions.sum((1, 2))  # (B,) zeros, still in the graph
        return self._gold_score(emissions, tags, mask) - self._log_partition(emissions, mask)

    def _gold_score(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        start, transitions = self._scores(ILLEGAL)
        maskf = mask.float()  # (B, W)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, W)
        score = (emitted * maskf).sum(1) + start[tags[:, 0]] * maskf[:, 0]  # (B,)
        moves = transitions[tags[:, :-1], tags[:, 1:]]  # (B, W-1)
        score = score + (moves * maskf[:, 1:]).sum(1)
        lengths = mask.sum(1)  # (B,)
        last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (B,)
        return score + self.end[last] * (lengths > 0).float()

    def _log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, transitions = self._scores(ILLEGAL)
        alpha = start + emissions[:, 0]  # (B, C)
        for t in range(1, emissions.shape[1]):
            step = alpha.unsqueeze(2) + transitions + emissions[:, t].unsqueeze(1)  # (B, C, C)
            alpha = torch.where(mask[:, t].unsqueeze(1), torch.logsumexp(step, 1), alpha)
        total = torch.logsumexp(alpha + self.end, 1)  # (B,)
        return total * mask[:, 0].float()  # an empty row has one (empty) path: log 1 = 0

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tag sequence per row (B, W); positions beyond a row's length are arbitrary.

        Args:
            emissions: (B, W, C) scores, any float dtype.
            mask: (B, W) bool, a left-aligned prefix per row.

        """
        emissions = emissions.float()  # (B, W, C)
        batch, width, num_tags = emissions.shape
        if width == 0:
            return torch.zeros(batch, 0, dtype=torch.long, device=emissions.device)
        start, transitions = self._scores(float("-inf"))
        score = start + emissions[:, 0]  # (B, C)
        keep = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)  # (B, C)
        history = []
        for t in range(1, width):
            best, previous = (score.unsqueeze(2) + transitions).max(1)  # (B, C), (B, C)
            valid = mask[:, t].unsqueeze(1)  # (B, 1)
            score = torch.where(valid, best + emissions[:, t], score)
            # Past a row's end, each tag "comes from" itself, so backtracking passes through.
            history.append(torch.where(valid, previous, keep))
        path = [(score + self.end).argmax(1)]  # (B,)
        for previous in reversed(history):
            path.append(previous.gather(1, path[-1].unsqueeze(1)).squeeze(1))
        return torch.stack(path[::-1], 1)  # (B, W)

    @torch.no_grad()
    def sample(
        self, emissions: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One tag sequence per row (B, W) drawn from the CRF's own ``p(tags | emissions)``.

        Forward filtering, backward sampling: the forward algorithm's log-alphas, then the last
        tag from ``alpha + end`` and each earlier one from ``alpha + transition into the next``.
        Illegal moves have probability 0. Positions beyond a row's length hold 0. Runs on the
        CPU (``generator`` is a CPU generator); the result is on the emissions' device.
        """
        device = emissions.device
        emissions, mask = emissions.detach().float().cpu(), mask.cpu()  # (B, W, C), (B, W)
        batch, width, _ = emissions.shape
        out = torch.zeros(batch, width, dtype=torch.long)
        if width == 0:
            return out.to(device)
        start, transitions = (s.detach().float().cpu() for s in self._scores(float("-inf")))
        alphas = [start + emissions[:, 0]]  # each (B, C)
        for t in range(1, width):
            step = alphas[-1].unsqueeze(2) + transitions + emissions[:, t].unsqueeze(1)
            alphas.append(torch.logsumexp(step, 1))  # rows past their end are never read
        lengths = mask.sum(1)  # (B,)
        end = self.end.detach().float().cpu()
        following = torch.zeros(batch, dtype=torch.long)  # (B,) the tag drawn at t + 1
        for t in range(width - 1, -1, -1):
            last = lengths == t + 1  # (B,) rows whose final word is at t
            into_next = transitions[:, following].T  # (B, C): score of moving into t + 1's tag
            logits = alphas[t] + torch.where(last.unsqueeze(1), end.expand(batch, -1), into_next)
            drawn = torch.multinomial(torch.softmax(logits, 1), 1, generator=generator)[:, 0]
            inside = t < lengths  # (B,)
            following = torch.where(inside, drawn, following)
            out[:, t] = torch.where(inside, drawn, 0)
        return out.to(device)


def compact(values: torch.Tensor, mask: torch.Tensor, fill: float = 0) -> torch.Tensor:
    """Move the ``mask``-ed positions of each row to a left-aligned prefix.

    Args:
        values: (B, T, ...) tensor.
        mask: (B, T) bool.
        fill: Value of the positions past each row's count.

    Returns:
        (B, W, ...) with W the largest count in the batch; gradients flow to ``values``.

    """
    rows, cols, slots = _slots(mask)
    out = values.new_full((values.shape[0], _width(mask), *values.shape[2:]), fill)
    return out.index_put((rows, slots), values[rows, cols])


def expand(values: torch.Tensor, mask: torch.Tensor, fill: float = 0) -> torch.Tensor:
    """The inverse of ``compact``: (B, W, ...) back to (B, T, ...) at the ``mask``-ed positions."""
    rows, cols, slots = _slots(mask)
    out = values.new_full((*mask.shape, *values.shape[2:]), fill)
    return out.index_put((rows, cols), values[rows, slots])


def prefix_mask(mask: torch.Tensor) -> torch.Tensor:
    """The (B, W) left-aligned mask of ``compact(values, mask)``."""
    width = torch.arange(_width(mask), device=mask.device)  # (W,)
    return width.unsqueeze(0) < mask.sum(1).unsqueeze(1)


def _width(mask: torch.Tensor) -> int:
    """The largest count of ``mask``-ed positions in a row (0 for an empty batch)."""
    return int(mask.sum(1).max()) if mask.numel() else 0


def _slots(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row, column and compacted slot of every ``mask``-ed position."""
    rows, cols = mask.nonzero(as_tuple=True)
    slots = mask.long().cumsum(1)[rows, cols] - 1
    return rows, cols, slots


class CRFTagger(nn.Module):
    """A token-classification model plus the CRF that scores its tag sequences.

    The forward gives the model's output (``.logits``: emissions (B, T, C)); the task computes
    the CRF loss and decodes from them, with the batch's ``word_mask``, which the model must not
    receive and is dropped here.
    """

    def __init__(self, model: nn.Module, crf: CRF) -> None:
        """Hold ``model`` and ``crf`` (the task's own CRF, shared by every wrapper)."""
        super().__init__()
        self.model = model
        self.crf = crf

    def forward(self, word_mask: torch.Tensor | None = None, **inputs: Any) -> ModelOutput:
        """The model's emissions for ``inputs``; ``word_mask`` is for the task, not the model."""
        return ModelOutput(logits=self.model(**inputs).logits)  # (B, T, C)
