"""Distillation from the model before this stage (LwF; Li & Hoiem, 2017).

The teacher is a frozen copy of the model as the stage starts (the previous stage's final
model). On each training batch of the new task the student is pulled towards the teacher's
predictions: ``weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over
the tagged words (token classification) or the examples (classification). The T^2 keeps the
gradient's scale independent of T (Hinton et al., 2015). When the stage grew the tag set
(``tasks.label_growth``), the KL covers the tags the teacher had: the new tags are the new
task's, on which the teacher knows nothing. With ``head: crf`` the KL is on each word's emission
softmax; the CRF's transition scores are not distilled.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domaintune.config.objectives import DistillConfig
from domaintune.errors import ConfigError
from domaintune.objectives.protocol import ObjectiveContext
from domaintune.tasks.inference import model_inputs

IGNORE = -100


class Distill:
    """KL from the frozen stage-start model (teacher) to the model being trained."""

    def __init__(self, cfg: DistillConfig) -> None:
        """Store the config; the teacher is copied in ``setup``."""
        self.cfg = cfg
        self.teacher: nn.Module | None = None
        self.classes: int | None = None

    def setup(self, ctx: ObjectiveContext) -> None:
        """Copy and freeze the model as it starts (before a resumed run loads its checkpoint)."""
        kind = ctx.task.kind
        task_cfg = getattr(ctx.task, "cfg", None)
        single = getattr(task_cfg, "problem", "single_label") == "single_label"
        if kind == "lm" or (kind == "text" and not single):
            raise ConfigError(
                "objectives: distill: needs a softmax over labels (single-label classification "
                "or token classification) → remove distill from this recipe"
            )
        teacher = copy.deepcopy(ctx.model).eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        self.teacher = ctx.task.wrap(teacher)  # the same module the loop trains (CRF drops masks)
        grown = set((ctx.extra or {}).get("grown", {}).values())
        self.classes = min(grown) if grown else None

    def loss(self, model: nn.Module, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        """The distillation term (a scalar) on the current batch."""
        assert self.teacher is not None, "setup() first"
        student = outputs.logits.float()  # (B, C) or (B, T, C)
        device = student.device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            teacher = self.teacher(**model_inputs(batch)).logits.float()
        if self.classes is not None:
            student, teacher = student[..., : self.classes], teacher[..., : self.classes]
        if student.dim() == 3:  # tagging: the words that carry a tag (first sub-words)
            keep = batch["labels"] != IGNORE  # (B, T)
            student, teacher = student[keep], teacher[keep]  # (N, C)
        if student.shape[0] == 0:
            return student.sum() * 0.0
        t = self.cfg.temperature
        kl = F.kl_div(
            F.log_softmax(student / t, -1),
            F.log_softmax(teacher / t, -1),
            log_target=True,
            reduction="batchmean",
        )
        return self.cfg.weight * t * t * kl
