"""An encoder-decoder (T5, BART...) that returns logits at the target positions only."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import ModelOutput


class Seq2SeqTargets(nn.Module):
    """Wrap a ``...ForConditionalGeneration`` model: teacher forcing on ``target_ids``.

    ``target_ids`` are the target tokens padded with -100; the decoder reads them shifted right
    after the model's ``decoder_start_token_id`` (what ``model(labels=...)`` does inside
    transformers, done here because the loop computes the loss itself). Logits come out as
    (N, V) for the N flat ``target_positions``.
    """

    def __init__(self, model: nn.Module) -> None:
        """Wrap ``model``; its config gives the decoder start and pad tokens."""
        super().__init__()
        self.model = model
        base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model  # type: ignore[operator]
        config = base.config
        start = getattr(config, "decoder_start_token_id", None)
        self.start = int(start if start is not None else config.pad_token_id)
        self.pad = int(config.pad_token_id if config.pad_token_id is not None else 0)

    def forward(
        self,
        input_ids: torch.Tensor,
        target_ids: torch.Tensor,
        target_positions: torch.Tensor,
        **inputs: Any,
    ) -> ModelOutput:
        """Logits (N, V) of the target tokens."""
        decoder_ids = torch.full_like(target_ids, self.pad)  # (B, T)
        decoder_ids[:, 0] = self.start
        decoder_ids[:, 1:] = target_ids[:, :-1]
        decoder_ids = decoder_ids.masked_fill(decoder_ids == -100, self.pad)
        logits = self.model(
            input_ids=input_ids, decoder_input_ids=decoder_ids, use_cache=False, **inputs
        ).logits  # (B, T, V)
        return ModelOutput(logits=logits.reshape(-1, logits.shape[-1])[target_positions])
