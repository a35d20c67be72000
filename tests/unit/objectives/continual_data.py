"""Tiny NER data with another tag set than conftest's Disease data, for continual-learning tests."""

from __future__ import annotations

import random
from pathlib import Path

from tests.conftest import WORDS

TYPES = {"company": "ORG", "market": "LOC", "profit": "ORG"}


def write_org_loc(folder: Path, n_train: int = 48, seed: int = 3) -> dict[str, Path]:
    """CoNLL splits tagging 'company'/'profit' as ORG and 'market' as LOC (a CoNLL-like task)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", n_train), ("dev", 16), ("test", 16)):
        lines = []
        for _ in range(n):
            for _ in range(rng.randint(3, 20)):
                word = rng.choice(WORDS[:30])
                lines.append(f"{word}\t{'B-' + TYPES[word] if word in TYPES else 'O'}")
            lines.append("")
        path = folder / f"{split}.conll"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths[split] = path
    return paths
