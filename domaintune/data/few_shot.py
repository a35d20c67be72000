"""Few-shot training sets: k examples per class, drawn reproducibly from the training split."""

from __future__ import annotations

import random
from collections import defaultdict

from domaintune.config.sections import FewShotConfig
from domaintune.data.readers import Example
from domaintune.errors import DataError


def sample_few_shot(examples: list[Example], cfg: FewShotConfig, origin: str) -> list[Example]:
    """``cfg.k`` examples of every label, in their file order.

    Each label's examples (in file order) are sampled by ``random.Random(cfg.seed)``, labels in
    sorted order, so a seed gives the same set whatever else the recipe changes.

    Raises:
        DataError: A label has fewer than ``k`` training examples.

    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_label[str(example["label"])].append(i)
    rng = random.Random(cfg.seed)
    chosen: list[int] = []
    for label in sorted(by_label):
        pool = by_label[label]
        if len(pool) < cfg.k:
            raise DataError(
                f"{origin}: data.few_shot.k: {cfg.k}: label {label!r} has only {len(pool)} "
                f"training examples → lower data.few_shot.k to {len(pool)} or less"
            )
        chosen += rng.sample(pool, cfg.k)
    return [examples[i] for i in sorted(chosen)]
