"""Objectives add loss terms inside the training step."""

from typing import Any

from domaintune.objectives.adversarial import FGM, PGD
from domaintune.objectives.distill import Distill
from domaintune.objectives.domain_adversarial import DANN
from domaintune.objectives.ewc import EWC
from domaintune.objectives.l2sp import L2SP

OBJECTIVES: dict[str, Any] = {
    "l2sp": L2SP,
    "fgm": FGM,
    "pgd": PGD,
    "dann": DANN,
    "ewc": EWC,
    "distill": Distill,
}

__all__ = ["OBJECTIVES"]
