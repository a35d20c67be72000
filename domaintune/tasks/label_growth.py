"""One tagging head over a sequence of tasks: the union of their tag sets.

A token-classification stage started from a finished token-classification run
(``model.init_from``) keeps that run's tags, in their order, and appends its own new ones: the
old head rows are copied and the new rows start as a fresh head would. The stage's model can
then still tag the earlier task, replayed examples keep their own tags, and distillation
compares the old tag subset. ``label_sets`` (the entity types of each task in the chain) lets
evaluation score a data set on the tag scheme it is annotated with (``TokenClassificationTask
.metrics``), as a head per task would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domaintune.data.labels import entity_types
from domaintune.data.pipeline import RawSplits
from domaintune.errors import ModelError
from domaintune.tasks.crf_head import new_crf

HEAD_NAMES = ("classifier", "score")  # the output layer of transformers' token classifiers


def inherit_labels(task: Any, init_from: str | None, raw: RawSplits) -> list[str] | None:
    """Make ``task.labels`` the union of the start run's tags and this data's; return the old.

    Returns ``None`` (nothing changes) unless the task tags tokens and ``init_from`` is a
    finished token-classification run.
    """
    saved = _saved_run(init_from)
    if task.kind != "tokens" or saved is None or saved["task"]["name"] != task.cfg.name:
        return None
    old: list[str] = list(saved["state"]["labels"])
    replayed = int(raw.stats.get("replay", {}).get("examples", 0))
    own_examples = raw.splits["train"][: len(raw.splits["train"]) - replayed]
    own = entity_types([e["tags"] for e in own_examples])
    sets: list[list[str]] = saved["state"].get("label_sets") or [
        sorted({t[2:] for t in old if t != "O"})
    ]
    if own not in sets:
        sets = [*sets, own]
    task.labels = old + [label for label in task.labels if label not in old]
    task.label_sets = sets
    if task.crf is not None:
        task.crf = new_crf(task.labels, _grown_crf(saved["state"].get("crf"), len(task.labels)))
    return old


def label_kwargs(labels: list[str]) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments of a head over ``labels``."""
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def grow_head(model: nn.Module, old: list[str], labels: list[str]) -> list[str]:
    """Widen the output layer from ``old`` to ``labels`` (old rows kept); return its names."""
    if len(labels) == len(old):
        return []
    for name in HEAD_NAMES:
        layer = getattr(model, name, None)
        if isinstance(layer, nn.Linear) and layer.out_features == len(old):
            break
    else:
        raise ModelError(
            f"model.init_from: cannot find the {len(old)}-tag output layer (looked for "
            f"{', '.join(HEAD_NAMES)}) → start from a run of a transformers token classifier"
        )
    wider = nn.Linear(layer.in_features, len(labels), bias=layer.bias is not None)
    std = float(getattr(model.config, "initializer_range", 0.02))
    with torch.no_grad():
        # As transformers initialises a new head: normal(0, initializer_range), zero bias.
        wider.weight.normal_(0.0, std)
        wider.weight[: len(old)] = layer.weight
        if layer.bias is not None:
            wider.bias.zero_()
            wider.bias[: len(old)] = layer.bias
    setattr(model, name, wider.to(layer.weight.device, layer.weight.dtype))
    config: Any = model.config
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    return [f"{name}.weight", *([f"{name}.bias"] if layer.bias is not None else [])]


def _saved_run(init_from: str | None) -> dict[str, Any] | None:
    if init_from is None:
        return None
    folder = Path(init_from).expanduser()
    for candidate in (folder / "final" / "domaintune.json", folder / "domaintune.json"):
        if candidate.is_file():
            saved: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            return saved
    return None


def _grown_crf(saved: dict[str, Any] | None, size: int) -> dict[str, Any] | None:
    """The saved CRF scores padded with zeros for the new tags (what a new CRF starts from)."""
    if saved is None:
        return None
    old = len(saved["start"])
    start, end = torch.zeros(size), torch.zeros(size)
    transitions = torch.zeros(size, size)
    start[:old], end[:old] = torch.tensor(saved["start"]), torch.tensor(saved["end"])
    transitions[:old, :old] = torch.tensor(saved["transitions"])
    return {"start": start.tolist(), "end": end.tolist(), "transitions": transitions.tolist()}
