"""Modules that turn a language model into a classifier over verbalised labels.

Each takes a padded batch of prompts (``input_ids``, ``attention_mask``, ``token_type_ids``)
and returns ``.logits`` of shape (B, C), one score per label, so the classification task's
loss, probabilities and metrics apply unchanged:

- :class:`ClozeScorer`: encoders; the hidden state at the prompt's one mask token scores each
  label's verbaliser words, through the MLM head (PET, Schick & Schütze 2021) or against the
  words' input embeddings (for checkpoints that ship without an MLM head).
- :class:`SimilarityScorer`: encoders; cosine of the mean-pooled prompt and label texts.
- :class:`LabelLikelihoodScorer`: decoders; log-probability of each label's tokens as the
  prompt's continuation.

Written by hand: transformers' ``fill-mask`` and ``zero-shot-classification`` pipelines score
without gradients, outside our batches, and the latter needs an NLI model. A label's several
words are combined by log-sum-exp (the probability of any).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import ModelOutput

from domaintune.errors import ModelError
from domaintune.models.lm import body_and_head


def _ragged(groups: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat ids and the label index of each: label c owns ``groups[c]``."""
    flat = torch.tensor([i for g in groups for i in g], dtype=torch.long)
    owner = torch.tensor([c for c, g in enumerate(groups) for _ in g], dtype=torch.long)
    return flat, owner


def padded(rows: list[list[int]]) -> torch.Tensor:
    """Ragged id lists as one (R, T) tensor, -1 where a row has ended."""
    out = torch.full((len(rows), max(len(r) for r in rows)), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def _combine(scores: torch.Tensor, owner: torch.Tensor, labels: int) -> torch.Tensor:
    """(B, W) word scores → (B, C) label scores: log-sum-exp over each label's words."""
    out = scores.new_full((scores.shape[0], labels), float("-inf"))
    for c in range(labels):  # C is small (a handful of labels)
        out[:, c] = torch.logsumexp(scores[:, owner == c], dim=-1)
    return out


def _calibrated(scores: torch.Tensor, rows: int) -> torch.Tensor:
    """Contextual calibration (Zhao et al., 2021): the last ``rows`` rows are content-free.

    Returns the first B - rows rows as log p(y | x) - mean log p(y | content-free).
    """
    logp = torch.log_softmax(scores.float(), dim=-1)  # (B + R, C)
    return logp[:-rows] - logp[-rows:].mean(0, keepdim=True)


class _Scorer(nn.Module):
    """Shared parts: the wrapped model and content-free rows for calibration."""

    calibration: torch.Tensor | None
    owner: torch.Tensor  # (W,) the label index of each verbaliser word

    def __init__(self, model: nn.Module, calibration: torch.Tensor | None) -> None:
        super().__init__()
        self.model = model
        # (R, T) content-free prompts, appended to every batch when calibrating.
        self.register_buffer("calibration", calibration, persistent=False)

    def _with_calibration(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Append the content-free rows (right-padded to a common width)."""
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        extra = self.calibration
        if extra is None:
            return input_ids, mask, 0
        width = max(input_ids.shape[1], extra.shape[1])
        rows = [F.pad(input_ids, (0, width - input_ids.shape[1]))]
        masks = [F.pad(mask, (0, width - mask.shape[1]))]
        extra = extra.to(input_ids.device)
        rows.append(F.pad(extra.clamp(min=0), (0, width - extra.shape[1])))
        masks.append(F.pad((extra >= 0).long(), (0, width - extra.shape[1])))
        return torch.cat(rows), torch.cat(masks), int(extra.shape[0])


class ClozeScorer(_Scorer):
    """Verbaliser-word scores at the one mask token of each prompt (encoders)."""

    words: torch.Tensor  # (W,) token ids

    def __init__(
        self,
        model: nn.Module,
        words: list[list[int]],
        mask_id: int,
        use_head: bool,
        calibration: torch.Tensor | None = None,
    ) -> None:
        """Wrap a ``...ForMaskedLM`` model.

        Args:
            model: The masked LM (possibly wrapped by peft).
            words: Per label, the token ids of its verbaliser words.
            mask_id: The tokenizer's mask token id.
            use_head: Score through the MLM head (True) or against the input embeddings.
            calibration: Content-free prompts (R, T; -1 = padding) for contextual calibration.

        """
        super().__init__(model, calibration)
        parts = body_and_head(model, "mlm")
        if parts is None:
            raise ModelError(
                f"method: prompting: {type(model).__name__}: cannot separate the encoder from "
                "its MLM head → use scoring: similarity"
            )
        self._parts = parts  # a tuple keeps them out of the module tree (they are in model)
        self.labels = len(words)
        self.mask_id = mask_id
        self.use_head = use_head
        flat, owner = _ragged(words)
        self.register_buffer("words", flat, persistent=False)  # (W,)
        self.register_buffer("owner", owner, persistent=False)  # (W,)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs: Any
    ) -> ModelOutput:
        """Label scores (B, C)."""
        ids, mask, extra = self._with_calibration(input_ids, attention_mask)
        if extra and "token_type_ids" in inputs:
            inputs["token_type_ids"] = torch.zeros_like(ids)
        body, head = self._parts
        hidden = body(input_ids=ids, attention_mask=mask, **inputs)[0]  # (B, T, H)
        at = (ids == self.mask_id).int().argmax(dim=1)  # (B,) the one mask of each row
        rows = hidden[torch.arange(ids.shape[0], device=ids.device), at]  # (B, H)
        if self.use_head:
            scores = head(rows)[:, self.words]  # (B, W)
        else:
            table = self.model.get_input_embeddings().weight  # type: ignore[operator]  # (V, H)
            scores = rows @ table[self.words].T  # (B, W)
        logits = _combine(scores, self.owner, self.labels)  # (B, C)
        return ModelOutput(logits=_calibrated(logits, extra) if extra else logits)


class SimilarityScorer(_Scorer):
    """Scaled cosine similarity of the mean-pooled prompt and each label's texts (encoders)."""

    texts: torch.Tensor  # (W, T) token ids, -1 padding

    def __init__(
        self,
        model: nn.Module,
        label_texts: list[list[int]],
        owner: list[int],
        scale: float,
        calibration: torch.Tensor | None = None,
    ) -> None:
        """Wrap an encoder (any ``...ForMaskedLM``; only its body is used).

        Args:
            model: The encoder with its MLM head (the head is unused).
            label_texts: Token ids (with special tokens) of every verbaliser text.
            owner: The label index of each text.
            scale: Multiplier of the cosine similarities.
            calibration: Content-free prompts (R, T; -1 = padding) for contextual calibration.

        """
        super().__init__(model, calibration)
        parts = body_and_head(model, "mlm")
        base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model  # type: ignore[operator]
        self._body = parts[0] if parts is not None else base.base_model
        self.register_buffer("texts", padded(label_texts), persistent=False)  # (W, T)
        self.register_buffer("owner", torch.tensor(owner), persistent=False)  # (W,)
        self.labels = max(owner) + 1
        self.scale = scale

    def _pool(self, ids: torch.Tensor, mask: torch.Tensor, **inputs: Any) -> torch.Tensor:
        hidden = self._body(input_ids=ids, attention_mask=mask, **inputs)[0]  # (B, T, H)
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)
        return F.normalize(pooled.float(), dim=-1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs: Any
    ) -> ModelOutput:
        """Label scores (B, C)."""
        ids, mask, extra = self._with_calibration(input_ids, attention_mask)
        if extra and "token_type_ids" in inputs:
            inputs["token_type_ids"] = torch.zeros_like(ids)
        prompts = self._pool(ids, mask, **inputs)  # (B, H)
        texts = self._pool(self.texts.clamp(min=0), (self.texts >= 0).long())  # (W, H)
        scores = self.scale * prompts @ texts.T  # (B, W)
        logits = _combine(scores, self.owner, self.labels)  # (B, C)
        return ModelOutput(logits=_calibrated(logits, extra) if extra else logits)


class LabelLikelihoodScorer(_Scorer):
    """Log-probability of each label's tokens after the prompt (decoders).

    The prompt runs once with a KV cache; every label's tokens but its last then run as a
    continuation of that cache (B × W rows of a few tokens), so the cost of a long prompt (with
    demonstrations) is paid once, not once per label.
    """

    continuations: torch.Tensor  # (W, M) token ids, -1 padding

    def __init__(
        self,
        model: nn.Module,
        words: list[list[int]],
        owner: list[int],
        normalize: bool,
        calibration: torch.Tensor | None = None,
    ) -> None:
        """Wrap a ``...ForCausalLM`` model.

        Args:
            model: The causal LM (possibly wrapped by peft).
            words: Token ids of every verbaliser continuation.
            owner: The label index of each continuation.
            normalize: Mean log-probability per token (True) or the sum.
            calibration: Content-free prompts (R, T; -1 = padding) for contextual calibration.

        """
        super().__init__(model, calibration)
        parts = body_and_head(model, "clm")
        if parts is None:
            raise ModelError(
                f"method: prompting: {type(model).__name__}: cannot separate the decoder from "
                "its LM head (logit soft-capping or scaling) → use another decoder"
            )
        self._parts = parts
        # transformers 5.x renamed the KV-cache argument and output from past_key_values
        names = inspect.signature(parts[0].forward).parameters
        self._cache = "cache" if "cache" in names else "past_key_values"
        self.register_buffer("continuations", padded(words), persistent=False)  # (W, M)
        self.register_buffer("owner", torch.tensor(owner), persistent=False)  # (W,)
        self.labels = max(owner) + 1
        self.normalize = normalize

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs: Any
    ) -> ModelOutput:
        """Label scores (B, C) for right-padded prompts."""
        ids, mask, extra = self._with_calibration(input_ids, attention_mask)
        body, head = self._parts
        batch = ids.shape[0]
        lengths = mask.sum(1)  # (B,)
        positions = (mask.cumsum(1) - 1).clamp(min=0)  # (B, T)
        cont = self.continuations  # (W, M)
        words, steps = cont.shape
        need_cache = steps > 1
        out = body(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=need_cache)
        hidden = out[0]  # (B, T, H)
        last = hidden[torch.arange(batch, device=ids.device), lengths - 1]  # (B, H)
        first = torch.log_softmax(head(last).float(), dim=-1)  # (B, V)
        valid = cont >= 0  # (W, M)
        tokens = cont.clamp(min=0)
        logp = first[:, tokens[:, 0]].unsqueeze(-1)  # (B, W, 1)
        if need_cache:
            cache = out.get(self._cache)
            if cache is None:  # transformers turns the cache off under gradient checkpointing
                raise ModelError(
                    "method: prompting: label_likelihood scoring needs the KV cache, which "
                    "gradient checkpointing turns off in training → set "
                    "model.gradient_checkpointing: false"
                )
            cache.batch_repeat_interleave(words)  # rows: (b0 w0, b0 w1, ..., b1 w0, ...)
            feed = tokens[:, :-1].repeat(batch, 1)  # (B W, M - 1)
            feed_mask = torch.cat(
                [mask.repeat_interleave(words, 0), valid[:, :-1].long().repeat(batch, 1)], 1
            )  # (B W, T + M - 1)
            feed_pos = lengths.repeat_interleave(words)[:, None] + torch.arange(
                steps - 1, device=ids.device
            )  # (B W, M - 1)
            more = body(
                input_ids=feed,
                attention_mask=feed_mask,
                position_ids=feed_pos,
                use_cache=True,
                **{self._cache: cache},
            )[0]  # (B W, M - 1, H)
            rest = torch.log_softmax(head(more).float(), dim=-1)  # (B W, M - 1, V)
            target = tokens[:, 1:].repeat(batch, 1)  # (B W, M - 1)
            picked = rest.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B W, M - 1)
            logp = torch.cat([logp, picked.view(batch, words, steps - 1)], dim=-1)  # (B, W, M)
        logp = logp.masked_fill(~valid, 0.0)
        scores = logp.sum(-1)  # (B, W)
        if self.normalize:
            scores = scores / valid.sum(-1).to(scores.dtype)
        logits = _combine(scores, self.owner, self.labels)  # (B, C)
        return ModelOutput(logits=_calibrated(logits, extra) if extra else logits)
