"""Seeded stratified train/validation/test split for data that comes without one."""

from __future__ import annotations

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
