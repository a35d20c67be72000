"""Length-grouped batches, sorted inference batches, the encode cache, fingerprints, padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from domaintune.data.batching import TrainBatchSampler, sorted_batches
from domaintune.data.collate import pad_feature, pad_inputs
from domaintune.data.encode import Encoded, cached_encode, fingerprint


@pytest.fixture(scope="module")
def lengths() -> list[int]:
    """Long-tailed token counts, like real sentences: most short, a few very long."""
    rng = np.random.default_rng(0)
    return np.minimum(8 + rng.lognormal(3.0, 0.8, 2000).astype(int), 512).tolist()


def padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


def epoch_batches(sampler: TrainBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


# -------------------------------------------------------------------------------------- sampler
@pytest.mark.parametrize("group_by_length", [True, False])
def test_every_index_exactly_once_per_epoch(lengths: list[int], group_by_length: bool) -> None:
    sampler = TrainBatchSampler(lengths, 16, seed=3, group_by_length=group_by_length)
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        assert len(batches) == len(sampler) == 125
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(len(b) == 16 for b in batches)


def test_ragged_last_batch_and_tiny_data() -> None:
    sampler = TrainBatchSampler([5, 9, 3, 7, 1], batch_size=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3
    assert sorted(len(b) for b in batches) == [1, 2, 2]
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]


def test_order_changes_between_epochs(lengths: list[int]) -> None:
    sampler = TrainBatchSampler(lengths, 16, seed=3)
    epochs = [epoch_batches(sampler, e) for e in range(3)]
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]


def test_same_seed_and_epoch_give_the_same_batches(lengths: list[int]) -> None:
    a = epoch_batches(TrainBatchSampler(lengths, 16, seed=11), 2)
    b = epoch_batches(TrainBatchSampler(lengths, 16, seed=11), 2)
    assert a == b
    assert a != epoch_batches(TrainBatchSampler(lengths, 16, seed=12), 2)


def test_grouping_cuts_padding_against_random_batches(lengths: list[int]) -> None:
    real = sum(lengths)
    grouped = padded_tokens(list(TrainBatchSampler(lengths, 16, seed=5)), lengths)
    plain = padded_tokens(
        list(TrainBatchSampler(lengths, 16, seed=5, group_by_length=False)), lengths
    )
    assert grouped / real < 1.3  # little padding left
    assert plain / grouped > 2.0  # random batches pad more than twice as many tokens


def test_grouped_batches_are_not_in_length_waves(lengths: list[int]) -> None:
    """Batches are shuffled after grouping: the longest batch is not always first or last."""
    firsts = []
    for epoch in range(4):
        batches = epoch_batches(TrainBatchSampler(lengths, 16, seed=5), epoch)
        maxima = [max(lengths[i] for i in b) for b in batches]
        assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)
        firsts.append(maxima[0])
    assert len(set(firsts)) > 1


def test_sorted_batches_decreasing_length() -> None:
    lengths = [5, 40, 12, 40, 3, 7, 21]
    batches = sorted_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert sorted_batches([], 4) == []


# --------------------------------------------------------------------------------------- encoded
def make_encoded() -> Encoded:
    return Encoded(
        {
            "input_ids": [
                np.array([101, 7, 8, 102], dtype=np.int64),
                np.array([101, 102]),
                np.array([101, 5, 6, 9, 4, 102]),
            ],
            "labels": [
                np.array([-100, 1, 2, -100]),
                np.array([-100, -100]),
                np.array([-100, 0, 0, 1, 2, -100]),
            ],
        }
    )


def test_encoded_lengths_and_subset() -> None:
    enc = make_encoded()
    assert len(enc) == 3 and enc.lengths == [4, 2, 6]
    sub = enc.subset([2, 0])
    assert sub.lengths == [6, 4]
    assert np.array_equal(sub.features["labels"][1], enc.features["labels"][0])


def test_cached_encode_builds_once_then_loads(tmp_path: Path) -> None:
    calls = []

    def build() -> Encoded:
        calls.append(1)
        return make_encoded()

    first, hit1 = cached_encode("abc", tmp_path / "cache", build)
    second, hit2 = cached_encode("abc", tmp_path / "cache", build)
    assert (hit1, hit2) == (False, True)
    assert len(calls) == 1
    assert (tmp_path / "cache" / "abc.npz").is_file()
    assert list(tmp_path.joinpath("cache").iterdir()) == [tmp_path / "cache" / "abc.npz"]
    assert set(second.features) == set(first.features)
    for name, arrays in first.features.items():
        assert len(second.features[name]) == len(arrays)
        for a, b in zip(arrays, second.features[name], strict=True):
            assert np.array_equal(a, b) and a.dtype == b.dtype
    cached_encode("other-key", tmp_path / "cache", build)
    assert len(calls) == 2


def test_cached_encode_without_a_cache_dir_always_builds() -> None:
    calls = []
    for _ in range(2):
        _, hit = cached_encode("k", None, lambda: calls.append(1) or make_encoded())
        assert hit is False
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_cache_entry_is_rebuilt(tmp_path: Path, damage: str) -> None:
    cached_encode("k", tmp_path, make_encoded)
    path = tmp_path / "k.npz"
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"not a zip file", "empty": b""}[damage]
    )
    calls = []
    enc, hit = cached_encode("k", tmp_path, lambda: calls.append(1) or make_encoded())
    assert (hit, len(calls)) == (False, 1)
    assert enc.lengths == [4, 2, 6]
    again, hit = cached_encode("k", tmp_path, make_encoded)  # the entry was rewritten
    assert hit is True and again.lengths == [4, 2, 6]


def test_empty_split_round_trips(tmp_path: Path) -> None:
    cached_encode("empty", tmp_path, lambda: Encoded({"input_ids": []}))
    enc, hit = cached_encode("empty", tmp_path, lambda: Encoded({"input_ids": [np.ones(2)]}))
    assert hit is True and len(enc) == 0


# ----------------------------------------------------------------------------------- fingerprint
BASE = (
    ["text one", "text two"],
    {"tokenizer": "minilm", "vocab": 30522},
    {"max_length": 128, "task": "ner"},
)


def test_fingerprint_is_stable_and_short() -> None:
    fp = fingerprint(*BASE)
    assert fp == fingerprint(*BASE)
    assert len(fp) == 32 and int(fp, 16) >= 0
    # Mapping key order does not matter.
    assert fp == fingerprint(BASE[0], {"vocab": 30522, "tokenizer": "minilm"}, BASE[2])


@pytest.mark.parametrize(
    "changed",
    [
        (["text one", "text 2"], BASE[1], BASE[2]),
        (["text two", "text one"], BASE[1], BASE[2]),
        (["text one"], BASE[1], BASE[2]),
        (BASE[0], {"tokenizer": "smollm2", "vocab": 30522}, BASE[2]),
        (BASE[0], BASE[1], {"max_length": 256, "task": "ner"}),
        (BASE[0], BASE[1], {"max_length": 128, "task": "ner", "x": None}),
        (BASE[0], BASE[1]),
        (*BASE, "extra"),
    ],
)
def test_fingerprint_changes_when_any_part_changes(changed: tuple) -> None:
    assert fingerprint(*changed) != fingerprint(*BASE)


def test_fingerprint_part_boundaries_matter() -> None:
    assert fingerprint("ab") != fingerprint("a", "b")
    assert fingerprint(["a", "b"]) != fingerprint("a", "b")
    assert fingerprint(1) != fingerprint("1")


# ---------------------------------------------------------------------------------------- collate
def test_pad_inputs_pads_ids_and_builds_the_mask() -> None:
    batch = pad_inputs(
        {
            "input_ids": [np.array([1, 2, 3]), np.array([4])],
            "token_type_ids": [np.array([0, 0, 1]), np.array([1])],
        },
        pad_token_id=9,
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1], [1, 0, 0]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_pad_feature_keeps_dtype() -> None:
    out = pad_feature([np.array([1.5], dtype=np.float32), np.array([1.0, 2.0], np.float32)], -1.0)
    assert out.dtype == torch.float32 and out.tolist() == [[1.5, -1.0], [1.0, 2.0]]
