"""One shared encoder, one head per task: the module a multi-task run trains.

Each head is the head of ``BertFor{Sequence,Token}Classification`` (dropout, then one linear
layer on the pooled output or on every token), initialised the way transformers initialises
it, so a task's head on the shared encoder exports as that transformers class
(``tasks.multitask_export``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import ModelOutput


class TaskHead(nn.Module):
    """Dropout and a linear layer over the pooled output (sequences) or every token (tagging)."""

    def __init__(self, config: Any, num_labels: int, tokens: bool) -> None:
        """A head for ``num_labels`` outputs on an encoder with ``config``'s hidden size."""
        super().__init__()
        self.tokens = tokens
        dropout: Any = getattr(config, "classifier_dropout", None) or getattr(
            config, "hidden_dropout_prob", 0.1
        )  # transformers' rule: classifier_dropout if set, else the hidden dropout
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        # transformers' _init_weights for linear layers (BERT family)
        nn.init.normal_(self.classifier.weight, std=getattr(config, "initializer_range", 0.02))
        nn.init.zeros_(self.classifier.bias)

    def forward(self, encoded: Any) -> torch.Tensor:
        """Logits (B, C) for sequences or (B, T, C) for tokens."""
        if self.tokens:
            features = encoded.last_hidden_state  # (B, T, H)
        else:
            pooled = getattr(encoded, "pooler_output", None)
            # models without a pooler: the first token's state, as BERT's pooler reads it
            features = pooled if pooled is not None else encoded.last_hidden_state[:, 0]  # (B, H)
        return self.classifier(self.dropout(features))  # type: ignore[no-any-return]


class MultiTaskModel(nn.Module):
    """The shared encoder, the heads (and CRFs) by task name; a batch belongs to one task."""

    def __init__(
        self,
        encoder: nn.Module,
        names: list[str],
        heads: nn.ModuleDict,
        crfs: nn.ModuleDict,
    ) -> None:
        """Hold the encoder and the task's own head modules (shared by every wrapper)."""
        super().__init__()
        self.encoder = encoder
        self.names = names
        self.heads = heads
        self.crfs = crfs  # trained with the heads; the task's CRF loss reads them

    def forward(
        self, task_id: torch.Tensor, word_mask: torch.Tensor | None = None, **inputs: Any
    ) -> ModelOutput:
        """Logits of the batch's task; ``task_id`` (B,) is the same for every row."""
        encoded = self.encoder(**inputs)
        return ModelOutput(logits=self.heads[self.names[int(task_id[0])]](encoded))
