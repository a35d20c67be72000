"""Predicted tags: orphan continuations are dropped exactly as strict IOB2 scoring drops them."""

from __future__ import annotations

from domaintune.evaluation.metrics import entity_metrics
from domaintune.tasks.token_classification import _entities, repair_prediction


def test_orphan_continuations_become_outside() -> None:
    assert repair_prediction(["O", "I-D", "I-D", "B-D", "I-D", "I-C"]) == [
        "O",
        "O",
        "O",
        "B-D",
        "I-D",
        "O",
    ]
    assert repair_prediction(["I-D"]) == ["O"]


def test_repair_does_not_change_strict_scores() -> None:
    gold = [["B-D", "I-D", "O", "B-D"], ["O", "B-C", "I-C", "O"]]
    pred = [["O", "I-D", "O", "B-D"], ["B-C", "I-C", "I-C", "I-D"]]
    assert (
        entity_metrics(gold, pred)["entity_f1"]
        == entity_metrics(gold, [repair_prediction(p) for p in pred])["entity_f1"]
    )


def test_entity_spans_from_tags() -> None:
    assert _entities(["B-D", "I-D", "O", "B-C", "B-C", "I-C"]) == [
        ("D", 0, 1),
        ("C", 3, 3),
        ("C", 4, 5),
    ]
