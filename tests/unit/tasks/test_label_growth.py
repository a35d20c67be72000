"""A tagging stage started from another tagging run: the union of the tags, old ones first."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from domaintune.config import TokenClassificationTaskConfig
from domaintune.data.pipeline import RawSplits
from domaintune.tasks import build_task
from domaintune.tasks.label_growth import grow_head, inherit_labels

OLD = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def _saved(tmp_path: Path, crf: bool) -> Path:
    state: dict[str, object] = {"labels": OLD}
    if crf:
        state["crf"] = {
            "start": [0.5] * 5,
            "end": [0.25] * 5,
            "transitions": [[0.1 * (i + j) for j in range(5)] for i in range(5)],
        }
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    task = {"name": "token_classification", "head": "crf" if crf else "softmax"}
    (final / "domaintune.json").write_text(json.dumps({"task": task, "state": state}))
    return tmp_path / "run"


def _task(crf: bool, replayed: int = 0) -> tuple[object, RawSplits]:
    cfg = TokenClassificationTaskConfig(
        name="token_classification", head="crf" if crf else "softmax"
    )
    task = build_task(cfg)
    train = [{"tokens": ["a", "b"], "tags": ["B-Disease", "O"]}] + [
        {"tokens": ["c"], "tags": ["B-ORG"]}
    ] * replayed
    raw = RawSplits({"train": train}, {"train": "x"}, {"replay": {"examples": replayed}})
    task.fit_labels(raw)  # type: ignore[attr-defined]
    return task, raw


def test_union_keeps_old_tags_first_and_records_each_tasks_types(tmp_path: Path) -> None:
    task, raw = _task(crf=False, replayed=2)
    old = inherit_labels(task, str(_saved(tmp_path, crf=False)), raw)
    assert old == OLD
    assert task.labels == [*OLD, "B-Disease", "I-Disease"]  # type: ignore[attr-defined]
    # replayed ORG examples are not this task's own types
    assert task.label_sets == [["LOC", "ORG"], ["Disease"]]  # type: ignore[attr-defined]
    # a data set is scored on the types of the tasks its gold tags come from
    assert task.scored_types([["B-ORG", "O"]]) == {"LOC", "ORG"}  # type: ignore[attr-defined]
    assert task.scored_types([["B-Disease"]]) == {"Disease"}  # type: ignore[attr-defined]


def test_crf_scores_are_kept_for_the_old_tags(tmp_path: Path) -> None:
    task, raw = _task(crf=True)
    inherit_labels(task, str(_saved(tmp_path, crf=True)), raw)
    crf = task.crf  # type: ignore[attr-defined]
    assert crf.transitions.shape == (7, 7)
    assert torch.allclose(crf.transitions[1, 3], torch.tensor(0.4))
    assert crf.transitions[5:, :].abs().sum() == 0 and torch.allclose(
        crf.start[:5], torch.tensor(0.5)
    )


def test_grow_head_copies_old_rows() -> None:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = nn.Linear(4, 5)
            self.config = type("Config", (), {"initializer_range": 0.02})()

    model = Tagger()
    before = model.classifier.weight.detach().clone()
    names = grow_head(model, OLD, [*OLD, "B-X", "I-X"])
    assert names == ["classifier.weight", "classifier.bias"]
    assert model.classifier.weight.shape == (7, 4)
    assert torch.equal(model.classifier.weight[:5], before)
    assert model.config.id2label[6] == "I-X"
    assert grow_head(model, [*OLD, "B-X", "I-X"], [*OLD, "B-X", "I-X"]) == []
