"""Seeded stratified split, and load_splits: read → clean → dedupe → split."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from domaintune.config.sections import DataConfig
from domaintune.data.pipeline import load_splits
from domaintune.data.split import stratified_split


def labelled(counts: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for label, n in counts.items():
        start = len(out)
        out.extend({"id": start + i, "label": label} for i in range(n))
    return out


EXAMPLES = labelled({"a": 300, "b": 80, "c": 20})
STRATA = [e["label"] for e in EXAMPLES]


def ids(split: list[dict[str, Any]]) -> list[int]:
    return [e["id"] for e in split]


# ----------------------------------------------------------------------------------------- split
def test_split_is_deterministic_for_a_seed() -> None:
    first = stratified_split(EXAMPLES, STRATA, 0.1, 0.1, seed=7)
    second = stratified_split(EXAMPLES, STRATA, 0.1, 0.1, seed=7)
    assert first == second
    other = stratified_split(EXAMPLES, STRATA, 0.1, 0.1, seed=8)
    assert ids(other["test"]) != ids(first["test"])


def test_split_is_disjoint_and_covers_everything() -> None:
    parts = stratified_split(EXAMPLES, STRATA, 0.1, 0.15, seed=1)
    assert set(parts) == {"train", "validation", "test"}
    assert (len(parts["validation"]), len(parts["test"])) == (40, 60)
    all_ids = [i for split in parts.values() for i in ids(split)]
    assert sorted(all_ids) == list(range(len(EXAMPLES)))  # each example exactly once


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_keeps_class_proportions(seed: int) -> None:
    parts = stratified_split(EXAMPLES, STRATA, 0.1, 0.1, seed=seed)
    for split in parts.values():
        counts = Counter(e["label"] for e in split)
        for label, total in Counter(STRATA).items():
            expected = total / len(EXAMPLES) * len(split)
            assert abs(counts[label] - expected) <= 1, (label, counts, len(split))


def test_split_without_strata_or_with_singletons_still_splits() -> None:
    plain = stratified_split(EXAMPLES, None, 0.1, 0.1, seed=3)
    assert (len(plain["validation"]), len(plain["test"])) == (40, 40)
    singleton = [*EXAMPLES[:50], {"id": 999, "label": "rare"}]
    strata = [e["label"] for e in singleton]
    parts = stratified_split(singleton, strata, 0.1, 0.1, seed=3)
    assert sorted(i for split in parts.values() for i in ids(split)) == sorted(ids(singleton))


def test_split_more_classes_than_held_out_slots_falls_back() -> None:
    examples = labelled({str(k): 2 for k in range(15)})  # 30 examples, 15 classes, 3 test slots
    parts = stratified_split(examples, [e["label"] for e in examples], 0.1, 0.1, seed=0)
    assert (len(parts["validation"]), len(parts["test"])) == (3, 3)
    assert len(parts["train"]) == 24


def test_zero_fraction_creates_no_split() -> None:
    parts = stratified_split(EXAMPLES, STRATA, 0.0, 0.2, seed=0)
    assert set(parts) == {"train", "test"}
    assert len(parts["test"]) == 80 and len(parts["train"]) == 320


# -------------------------------------------------------------------------------------- pipeline
def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def train_rows() -> list[tuple[str, str]]:
    rows = [(f"positive review number {i}", "pos") for i in range(60)]
    rows += [(f"negative review number {i}", "neg") for i in range(40)]
    # Five duplicates once cleaned: extra spaces, a full-width digit, tabs, exact copies.
    rows += [
        ("positive  review number 1", "pos"),
        ("positive review number ２", "pos"),
        ("  negative review number 3\t", "neg"),
        ("negative review number 4", "neg"),
        ("positive review number 5", "pos"),
    ]
    return rows


def test_only_a_train_file_creates_validation_and_test(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", train_rows())
    raw = load_splits(DataConfig(train=str(path)), "text")
    assert set(raw.splits) == {"train", "validation", "test"}
    assert raw.stats["duplicates_dropped"] == 5
    assert raw.stats["split_from_train"] == ["validation", "test"]
    assert raw.stats["sizes"] == {"train": 80, "validation": 10, "test": 10}
    assert raw.origins["train"] == str(path)
    assert raw.origins["test"] == f"{path} (split, seed 42)"
    texts = [e["text"] for split in raw.splits.values() for e in split]
    assert len(texts) == len(set(texts)) == 100
    for split in ("validation", "test"):
        assert Counter(e["label"] for e in raw.splits[split]) == {"pos": 6, "neg": 4}
    again = load_splits(DataConfig(train=str(path)), "text")
    assert again.splits == raw.splits


def test_split_seed_and_fractions_come_from_the_recipe(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", train_rows())
    cfg = DataConfig(train=str(path), split={"validation": 0.2, "test": 0.0, "seed": 5})
    raw = load_splits(cfg, "text")
    assert set(raw.splits) == {"train", "validation"}
    assert raw.stats["sizes"] == {"train": 80, "validation": 20}
    assert raw.origins["validation"].endswith("(split, seed 5)")


def test_dedupe_only_inside_train_and_can_be_disabled(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", [("a", "x"), ("a", "x"), ("b", "y")])
    dev = write_csv(tmp_path / "dev.csv", [("a", "x"), ("a", "x")])
    test = write_csv(tmp_path / "test.csv", [("b", "y")])
    cfg = DataConfig(train=str(train), validation=str(dev), test=str(test))
    raw = load_splits(cfg, "text")
    assert raw.stats["duplicates_dropped"] == 1
    assert "split_from_train" not in raw.stats
    assert raw.stats["sizes"] == {"train": 2, "validation": 2, "test": 1}
    kept = load_splits(
        DataConfig(train=str(train), validation=str(dev), test=str(test), clean={"dedupe": False}),
        "text",
    )
    assert "duplicates_dropped" not in kept.stats
    assert kept.stats["sizes"]["train"] == 3


def test_normalize_false_keeps_text_as_read(tmp_path: Path) -> None:
    rows = [("ＡＢＣ  x", "p"), ("b", "q")]
    train = write_csv(tmp_path / "train.csv", rows)
    for normalize, text in ((False, "ＡＢＣ  x"), (True, "ABC x")):
        cfg = DataConfig(
            train=str(train), validation=str(train), test=str(train), clean={"normalize": normalize}
        )
        assert load_splits(cfg, "text").splits["test"][0]["text"] == text


CHINESE = [
    "我爱北京天安门。",
    "这是 一个 测试",  # single spaces between CJK characters stay
    "使用BERT模型进行中文分类",
    "乳腺癌、卵巢癌与BRCA1基因",
]


def test_chinese_text_survives_cleaning_unchanged(tmp_path: Path) -> None:
    rows = [{"text": t, "text_b": t[::-1], "label": str(i % 2)} for i, t in enumerate(CHINESE)]
    files = []
    for name in ("train", "dev", "test"):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8"
        )
        files.append(str(path))
    cfg = DataConfig(train=files[0], validation=files[1], test=files[2], text_pair_column="text_b")
    raw = load_splits(cfg, "text")
    for split in raw.splits.values():
        assert [e["text"] for e in split] == CHINESE
        assert [e["text_pair"] for e in split] == [t[::-1] for t in CHINESE]


def test_token_data_is_cleaned_per_token_and_split_without_strata(tmp_path: Path) -> None:
    sentences = [f"Ｗｏｒｄ{i}\tO\n中文\tB-X\n文本\tI-X\n" for i in range(30)]
    path = tmp_path / "train.conll"
    path.write_text("\n".join(sentences), encoding="utf-8")
    raw = load_splits(DataConfig(train=str(path)), "tokens")
    assert raw.stats["sizes"] == {"train": 24, "validation": 3, "test": 3}
    first = raw.splits["train"][0]
    assert first["tokens"][0].startswith("Word") and first["tokens"][1:] == ["中文", "文本"]
    assert first["tags"] == ["O", "B-X", "I-X"]


def test_hf_dataset_folder_with_splits(tmp_path: Path) -> None:
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]})
    datasets.DatasetDict({"train": ds, "valid": ds}).save_to_disk(str(tmp_path / "dd"))
    cfg = DataConfig(
        format="hf",
        dataset=str(tmp_path / "dd"),
        splits={"train": "train", "validation": "valid"},
        split={"validation": 0.0, "test": 0.25},
    )
    raw = load_splits(cfg, "text")
    assert raw.stats["sizes"] == {"train": 3, "validation": 4, "test": 1}
    assert raw.origins["validation"] == f"{tmp_path / 'dd'}[valid]"
