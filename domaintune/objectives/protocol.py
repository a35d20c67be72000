"""The interface of an objective: an extra loss term computed inside the training step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from domaintune.config.sections import DataConfig, TrainConfig
from domaintune.data.encode import Encoded
from domaintune.data.readers import Example
from domaintune.tasks.protocol import Task


@dataclass
class ObjectiveContext:
    """What an objective may look at once, before training starts.

    Attributes:
        model: The model after the method was applied (what the loop trains, before the task wraps
            it).
        pretrained: Names of ``model``'s parameters loaded from the checkpoint (the rest, e.g. a
            new task head, start random).
        task: The run's task (loss, collate, outputs).
        tokenizer: The run's tokenizer.
        accelerator: The run's Accelerator (device, processes).
        train: The encoded training split.
        data: The recipe's data section.
        train_cfg: The recipe's train section.
        init_from: The folder the model started from (an earlier run's ``final`` or a model
            folder), when the recipe set ``model.init_from``.
        encode: Encodes more examples exactly as the training split was (same tokenizer,
            labels and ``max_length``).
        extra: What some objectives need besides: ``run_dir`` (the run folder, e.g. for EWC's
            ``fisher.safetensors``), ``fresh`` (names of parameters the checkpoint lacked) and
            ``grown`` (a head grown over a new tag set: parameter name → rows it had before).

    """

    model: nn.Module
    pretrained: set[str]
    task: Task
    tokenizer: Any
    accelerator: Any
    train: Encoded
    data: DataConfig
    train_cfg: TrainConfig
    init_from: Path | None = None
    encode: Callable[[list[Example]], Encoded] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Objective(Protocol):
    """An extra loss term; the loop adds ``loss(...)`` to the task loss of every step."""

    def setup(self, ctx: ObjectiveContext) -> None:
        """Take what the objective needs (anchors, Fisher, a teacher) before training."""

    def loss(self, model: nn.Module, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        """A finite scalar added to the step's loss (already scaled by the objective's weight)."""
