"""Seeded stratified train/validation/test split for data that comes without one."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from sklearn.model_selection import train_test_split


def stratified_split(
    examples: list[dict[str, Any]],
    strata: list[str] | None,
    validation: float,
    test: float,
    seed: int,
) -> dict[str, list[dict[str, Any]]]:
    """Split examples into train/validation/test with a seed.

    The split is stratified by ``strata`` when every stratum has two members at least, and a
    plain seeded shuffle split otherwise.
    """
    indices = list(range(len(examples)))
    out: dict[str, list[int]] = {"train": indices}
    for name, fraction in (("test", test), ("validation", validation)):
        pool = out["train"]
        if fraction <= 0 or len(pool) < 3:
            continue
        # The fraction is of the whole data set, so rescale it to the remaining pool.
        size = max(1, round(fraction * len(examples)))
        labels = [strata[i] for i in pool] if strata is not None else None
        usable = labels is not None and min(Counter(labels).values()) >= 2
        try:
            keep, held = train_test_split(
                pool, test_size=size, random_state=seed, stratify=labels if usable else None
            )
        except ValueError:  # fewer held-out slots than classes: fall back to a plain split
            keep, held = train_test_split(pool, test_size=size, random_state=seed)
        out["train"], out[name] = sorted(keep), sorted(held)
    return {name: [examples[i] for i in idx] for name, idx in out.items()}


def stratified_subset(
    examples: list[dict[str, Any]],
    strata: list[str] | None,
    size: int,
    seed: int,
    cover: list[set[str]] | None = None,
) -> list[dict[str, Any]]:
    """A seeded subset of ``size`` examples, in their original order.

    With ``cover`` (e.g. each sentence's entity types), every value in it appears in the
    subset at least once where ``size`` allows: rarest first, a seeded pick among the examples
    holding it. The rest is stratified by ``strata`` (each stratum keeps its share) when every
    stratum has two members at least and there is room for each; a plain seeded sample
    otherwise. All examples when there are ``size`` or fewer.
    """
    if size >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    chosen: set[int] = set()
    if cover is not None:
        counts = Counter(value for values in cover for value in values)
        for value in sorted(counts, key=lambda v: (counts[v], v)):
            if len(chosen) < size and not any(value in cover[i] for i in chosen):
                chosen.add(rng.choice([i for i, values in enumerate(cover) if value in values]))
    rest = [i for i in range(len(examples)) if i not in chosen]
    need = size - len(chosen)
    if need > 0:
        labels = [strata[i] for i in rest] if strata is not None else None
        usable = (
            labels is not None
            and min(Counter(labels).values()) >= 2
            and len(set(labels)) <= min(need, len(rest) - need)
        )
        if need >= len(rest):
            chosen.update(rest)
        else:
            keep, _ = train_test_split(
                rest, train_size=need, random_state=seed, stratify=labels if usable else None
            )
            chosen.update(keep)
    return [examples[i] for i in sorted(chosen)]
