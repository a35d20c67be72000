"""The CRF head of token classification: loss, decoding and saved state over first sub-words.

The CRF sees words, not sub-words: the emissions of each word's first sub-word (where the
labels are not -100 in training, where ``word_mask`` is set at prediction time) are compacted
into a left-aligned (B, W, C) tensor. Words cut off by ``max_length`` are simply absent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from domaintune.models.crf import CRF, compact, expand, iob2_constraints, prefix_mask


def new_crf(labels: list[str], saved: dict[str, Any] | None = None) -> CRF:
    """A CRF with the IOB2 constraints of ``labels``; scores from ``saved`` (``crf_state``)."""
    allowed, allowed_start = iob2_constraints(labels)
    crf = CRF(len(labels), allowed, allowed_start)
    if saved is not None:
        with torch.no_grad():
            for name in ("start", "end", "transitions"):
                getattr(crf, name).copy_(torch.tensor(saved[name], dtype=torch.float32))
    return crf


def crf_state(crf: CRF) -> dict[str, Any]:
    """The learned scores as nested lists (JSON; float32 values round-trip exactly)."""
    return {
        name: getattr(crf, name).detach().float().cpu().tolist()
        for name in ("start", "end", "transitions")
    }


def crf_loss(
    crf: CRF, logits: torch.Tensor, labels: torch.Tensor, ignore: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative log-likelihood summed over sentences, and the number of tagged words.

    Dividing by words rather than sentences keeps the loss per word, on the scale of the
    softmax head's cross-entropy, so learning rates carry over and long sentences weigh as
    much per word as short ones (the loop divides by the global count, exactly under DDP).
    """
    tagged = labels != ignore  # (B, T)
    emissions = compact(logits, tagged)  # (B, W, C)
    mask = prefix_mask(tagged)  # (B, W)
    tags = legal_tags(compact(labels, tagged), mask, crf)  # (B, W)
    total = -crf.log_likelihood(emissions, tags, mask).sum()
    return total, tagged.sum().float()


def crf_tags(crf: CRF, logits: torch.Tensor, word_mask: torch.Tensor) -> np.ndarray:
    """Viterbi tag ids at the first sub-word positions (B, T); other positions hold 0."""
    path = crf.decode(compact(logits, word_mask), prefix_mask(word_mask))  # (B, W)
    return expand(path, word_mask).cpu().numpy()  # type: ignore[no-any-return]


def legal_tags(tags: torch.Tensor, mask: torch.Tensor, crf: CRF) -> torch.Tensor:
    """Gold tags the constraints allow: an ``I-X`` that cannot be where it is becomes ``B-X``.

    Gold data is valid IOB2 once read, but a word the tokenizer turns into no token at all
    vanishes from the compacted sequence and can leave ``O, I-X``; scored as it is, that path
    would cost ``-ILLEGAL`` (about 1e4) in the loss.
    """
    if tags.shape[1] == 0:
        return tags
    first_bad = ~crf.allowed_start[tags[:, 0]] & mask[:, 0]  # (B,)
    moves_bad = ~crf.allowed[tags[:, :-1], tags[:, 1:]] & mask[:, 1:]  # (B, W-1)
    if not (bool(first_bad.any()) or bool(moves_bad.any())):
        return tags
    # For a continuation tag, the beginning of its type: the one allowed predecessor that is
    # allowed to start a sequence (B-X); any other tag maps to itself.
    begin = torch.arange(crf.num_tags, device=tags.device)  # (C,)
    for j in range(crf.num_tags):
        if not bool(crf.allowed_start[j]):
            sources = (crf.allowed[:, j] & crf.allowed_start).nonzero()
            begin[j] = sources[0, 0] if len(sources) else j
    tags = tags.clone()
    tags[:, 0] = torch.where(first_bad, begin[tags[:, 0]], tags[:, 0])
    for t in range(1, tags.shape[1]):
        bad = ~crf.allowed[tags[:, t - 1], tags[:, t]] & mask[:, t]  # (B,)
        tags[:, t] = torch.where(bad, begin[tags[:, t]], tags[:, t])
    return tags
