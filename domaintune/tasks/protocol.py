"""The interface every task implements; everything that differs by task lives behind it."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from domaintune.data.encode import Encoded
from domaintune.data.pipeline import RawSplits
from domaintune.data.readers import Example, Kind


class Task(Protocol):
    """A task: labels, model class, encoding, loss, predictions and metrics.

    Optional hooks (multi-task uses them; ``api`` and the loop check with ``getattr``):
    ``load_splits() -> RawSplits`` reads the task's own data instead of the recipe's ``data``;
    ``batch_sampler(train, cfg)`` draws the training batches; ``eval_batches(encoded,
    batch_size)`` groups inference batches; ``export_tasks(module, run_dir, recipe, tokenizer,
    scores)`` writes extra loadable folders after the final model is saved. Prompting uses
    ``on_model_loaded(model, missing_keys)`` (after a new run loads its model, before the method
    applies: what the checkpoint lacked).
    """

    kind: Kind
    default_metric: str

    def fit_labels(self, raw: RawSplits) -> None:
        """Build the label set from the training split and check the other splits against it."""

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state (labels, thresholds) saved in the run folder."""

    def auto_class(self) -> Any:
        """The transformers ``AutoModelFor...`` class of this task."""

    def model_kwargs(self) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments (num_labels, id2label, ...)."""

    def bind(self, model_type: str, tokenizer: Any) -> None:
        """Learn what the task needs from the model type and tokenizer (before encoding)."""

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the loop trains and evaluates (the model itself for most tasks)."""

    def encode(self, examples: list[Example], tokenizer: Any, max_length: int) -> Encoded:
        """Tokenise examples (with labels when they have them)."""

    def collate(
        self, features: dict[str, list[np.ndarray]], pad_token_id: int, training: bool = False
    ) -> dict[str, torch.Tensor]:
        """Pad a list of encoded examples into model inputs plus ``labels``.

        ``training`` is True for training batches (tasks that draw random masks draw them
        then; evaluation batches are deterministic).
        """

    def loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss over the batch and the number of items it sums over."""

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per-example raw outputs (probabilities, values or tag ids) for metrics and prediction."""

    def metrics(
        self,
        outputs: list[np.ndarray],
        examples: list[Example],
        tune: bool = False,
        encoded: Encoded | None = None,
    ) -> dict[str, Any]:
        """Metrics of ``outputs`` against gold labels (``tune`` adjusts thresholds)."""

    def format_predictions(
        self, outputs: list[np.ndarray], examples: list[Example], encoded: Encoded, tokenizer: Any
    ) -> list[dict[str, Any]]:
        """Human-readable predictions: labels with probabilities, or entity spans."""
