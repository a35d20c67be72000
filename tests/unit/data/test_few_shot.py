"""data.few_shot: k training examples per class, the same set for the same seed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from domaintune.config import load_recipe
from domaintune.config.sections import DataConfig, FewShotConfig
from domaintune.data.few_shot import sample_few_shot
from domaintune.data.pipeline import load_splits
from domaintune.errors import ConfigError, DataError
from tests.conftest import write_classification

EXAMPLES = [{"text": f"t{i}", "label": ["a", "b", "c"][i % 3]} for i in range(30)]


def test_k_per_class_in_file_order() -> None:
    chosen = sample_few_shot(EXAMPLES, FewShotConfig(k=4, seed=0), "train.jsonl")
    assert Counter(e["label"] for e in chosen) == {"a": 4, "b": 4, "c": 4}
    order = [EXAMPLES.index(e) for e in chosen]
    assert order == sorted(order)


def test_same_seed_same_set_other_seed_other_set() -> None:
    def texts(seed: int) -> list[str]:
        return [e["text"] for e in sample_few_shot(EXAMPLES, FewShotConfig(k=3, seed=seed), "x")]

    assert texts(7) == texts(7)
    assert texts(7) != texts(8)


def test_a_class_with_fewer_than_k_is_an_error() -> None:
    few = [*EXAMPLES, {"text": "rare", "label": "d"}]
    with pytest.raises(DataError, match=r"few_shot.k: 2: label 'd' has only 1"):
        sample_few_shot(few, FewShotConfig(k=2, seed=0), "train.jsonl")


def test_pipeline_samples_train_only(tmp_path: Path) -> None:
    paths = write_classification(tmp_path / "cls")
    cfg = DataConfig(
        train=str(paths["train"]),
        validation=str(paths["dev"]),
        test=str(paths["test"]),
        few_shot=FewShotConfig(k=5, seed=3),
    )
    raw = load_splits(cfg, "text")
    assert Counter(e["label"] for e in raw.splits["train"]) == {"negative": 5, "positive": 5}
    assert len(raw.splits["validation"]) == 32 and len(raw.splits["test"]) == 32
    assert raw.stats["few_shot"] == {"k": 5, "seed": 3}
    again = load_splits(cfg, "text")
    assert again.splits["train"] == raw.splits["train"]


def test_few_shot_needs_single_label_classification() -> None:
    with pytest.raises(ConfigError, match="few_shot"):
        load_recipe(
            {
                "task": {"name": "token_classification"},
                "data": {"train": "x.conll", "few_shot": {"k": 8}},
            }
        )
