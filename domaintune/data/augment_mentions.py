"""Mention replacement (Dai & Adel, 2020): swap entity mentions for same-type mentions of train.

A replacement mention brings its own tokens, tagged ``B-X I-X ...``; the rest of the sentence is
unchanged, so the tags stay aligned. Replacement mentions come from the original training
split only (never validation or test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domaintune.config.augment import MentionReplacementConfig
from domaintune.data.augment_text import entity_spans
from domaintune.data.readers import Example

if TYPE_CHECKING:
    from domaintune.data.augment import AugmentContext


def mention_pools(examples: list[Example]) -> dict[str, list[tuple[str, ...]]]:
    """Distinct mentions (token tuples) of each entity type, in first-seen order."""
    pools: dict[str, dict[tuple[str, ...], None]] = {}
    for example in examples:
        for start, end, kind in entity_spans(example["tags"]):
            pools.setdefault(kind, {})[tuple(example["tokens"][start:end])] = None
    return {kind: list(mentions) for kind, mentions in pools.items()}


def augment(
    examples: list[Example], cfg: MentionReplacementConfig, ctx: AugmentContext
) -> tuple[list[tuple[int, Example]], dict[str, Any]]:
    """``cfg.copies`` copies of each sentence with entities, ``rate`` of its mentions replaced."""
    pools = mention_pools(ctx.train)
    out: list[tuple[int, Example]] = []
    for i, example in enumerate(examples):
        spans = entity_spans(example["tags"])
        if not spans:
            continue
        for copy in range(cfg.copies):
            rng = ctx.rng(i, copy)
            count = max(1, round(cfg.rate * len(spans)))
            chosen = set(rng.sample(range(len(spans)), min(count, len(spans))))
            tokens: list[str] = []
            tags: list[str] = []
            previous = 0
            changed = False
            for n, (start, end, kind) in enumerate(spans):
                tokens += example["tokens"][previous:start]
                tags += example["tags"][previous:start]
                mention = tuple(example["tokens"][start:end])
                others = [m for m in pools.get(kind, []) if m != mention]
                if n in chosen and others:
                    mention = rng.choice(others)
                    changed = True
                tokens += mention
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
                previous = end
            if changed:
                tokens += example["tokens"][previous:]
                tags += example["tags"][previous:]
                out.append((i, {**example, "tokens": tokens, "tags": tags}))
    return out, {"mentions": {kind: len(m) for kind, m in sorted(pools.items())}}
