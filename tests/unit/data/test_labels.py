"""Label checks and tag schemes: IOB2/IOBES/BMES/IOB1 to strict IOB2, repair or reject."""

from __future__ import annotations

import pytest

from domaintune.data.labels import (
    build_label_list,
    check_known_labels,
    entity_types,
    label_counts,
    split_multi_label,
    tag_list_for,
    to_iob2,
)
from domaintune.errors import DataError


@pytest.mark.parametrize(
    ("tags", "iob2"),
    [
        pytest.param(
            ["B-LOC", "M-LOC", "E-LOC", "S-PER", "O", "B-ORG", "E-ORG", "S-PER", "S-PER"],
            ["B-LOC", "I-LOC", "I-LOC", "B-PER", "O", "B-ORG", "I-ORG", "B-PER", "B-PER"],
            id="bmes",
        ),
        pytest.param(
            ["S-X", "B-Y", "I-Y", "I-Y", "E-Y", "O", "S-X", "S-X", "B-X", "E-X"],
            ["B-X", "B-Y", "I-Y", "I-Y", "I-Y", "O", "B-X", "B-X", "B-X", "I-X"],
            id="iobes",
        ),
        pytest.param(
            ["O", "B-Disease", "I-Disease", "B-Disease", "O", "B-Chem"],
            ["O", "B-Disease", "I-Disease", "B-Disease", "O", "B-Chem"],
            id="iob2-unchanged",
        ),
        pytest.param(["B_PER", "I_PER", ""], ["B-PER", "I-PER", "O"], id="underscore-and-empty"),
        pytest.param(
            ["B-GENE-OR-PROTEIN", "I-GENE-OR-PROTEIN"],
            ["B-GENE-OR-PROTEIN", "I-GENE-OR-PROTEIN"],
            id="hyphen-in-type",
        ),
        pytest.param([], [], id="empty"),
    ],
)
def test_to_iob2_converts_exactly(tags: list[str], iob2: list[str]) -> None:
    assert to_iob2(tags, repair=False, where="f") == iob2
    assert to_iob2(iob2, repair=False, where="f") == iob2  # IOB2 output is a fixed point


@pytest.mark.parametrize(
    ("tags", "repaired"),
    [
        (["O", "I-X"], ["O", "B-X"]),
        (["I-X", "I-X"], ["B-X", "I-X"]),  # at the start of a sentence
        (["B-X", "I-Y"], ["B-X", "B-Y"]),  # type change
        (["S-X", "I-X"], ["B-X", "B-X"]),  # S ends an entity
        (["B-X", "E-X", "E-X"], ["B-X", "I-X", "B-X"]),  # E ends an entity
        (["I-X", "I-X", "B-X", "I-X", "O"], ["B-X", "I-X", "B-X", "I-X", "O"]),  # IOB1
    ],
)
def test_repair_turns_orphan_continuations_into_beginnings(
    tags: list[str], repaired: list[str]
) -> None:
    assert to_iob2(tags, repair=True, where="f") == repaired


def test_without_repair_an_orphan_continuation_is_a_data_error() -> None:
    with pytest.raises(DataError) as info:
        to_iob2(["O", "I-X"], repair=False, where="train.conll sentence 3")
    message = str(info.value)
    assert message.startswith("train.conll sentence 3: token 2: 'I-X' follows 'O'")
    assert "task.repair_tags: true" in message


def test_without_repair_an_orphan_at_the_start_is_a_data_error() -> None:
    with pytest.raises(DataError, match="token 1: 'I-X' follows 'the start'"):
        to_iob2(["I-X"], repair=False, where="f")


@pytest.mark.parametrize("bad", ["PER", "b-PER", "X-PER", "B-", "BPER", "B:PER", "o"])
@pytest.mark.parametrize("repair", [True, False])
def test_invalid_tag_is_a_data_error(bad: str, repair: bool) -> None:
    with pytest.raises(DataError) as info:
        to_iob2(["O", bad], repair=repair, where="dev.conll:12")
    assert str(info.value).startswith(f"dev.conll:12: token 2: tag {bad!r} is not O")


def test_check_known_labels_names_label_split_and_origin() -> None:
    check_known_labels(["a", "b", "a"], ["a", "b"], "validation", "dev.csv")  # no error
    with pytest.raises(DataError) as info:
        check_known_labels(["a", "zebra"], ["a", "b"], "test", "test.csv")
    message = str(info.value)
    assert message.startswith("test.csv: example 2 of the test split has label 'zebra'")
    assert "(labels: a, b)" in message


def test_tag_list_for() -> None:
    assert tag_list_for(["Chemical", "Disease"]) == [
        "O",
        "B-Chemical",
        "I-Chemical",
        "B-Disease",
        "I-Disease",
    ]
    assert tag_list_for([]) == ["O"]


def test_entity_types_and_tag_list_cover_every_tag_used() -> None:
    tag_lists = [["O", "B-Disease", "I-Disease"], ["B-Chem", "O"], ["O"]]
    types = entity_types(tag_lists)
    assert types == ["Chem", "Disease"]
    assert {t for tags in tag_lists for t in tags} <= set(tag_list_for(types))


def test_multi_label_cells_and_label_lists() -> None:
    assert split_multi_label(["a", 2], None) == ["a", "2"]
    assert split_multi_label("a; b;;c ", ";") == ["a", "b", "c"]
    assert split_multi_label("a;b", None) == ["a;b"]
    assert build_label_list(["pos", "neg", "pos", "neu"]) == ["neg", "neu", "pos"]
    assert list(label_counts(["b", "a", "b", "c", "b", "a"]).items()) == [
        ("b", 3),
        ("a", 2),
        ("c", 1),
    ]
