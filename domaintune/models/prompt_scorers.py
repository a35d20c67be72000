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
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import ModelOutput

from domaintune.errors import ModelError
from domaintune.models.lm import body_and_head

# Attention implementations that take a custom 4D mask (labels side by side on one cache).
MASKABLE = ("sdpa", "eager")


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


class _Scorer(nn.Module):
    """Shared parts: the wrapped model and the calibration prompts with their label bias.

    Calibration subtracts a label bias from the log-probabilities of every prompt's labels:
    the mean log-probability over content-free prompts (contextual calibration, Zhao et al.,
    2021) or the log of the mean probability over real texts (batch calibration, Zhou et al.,
    2024). The calibration prompts run with a batch; in evaluation mode (weights fixed) the bias
    of the first batch is kept and the prompts do not run again until the next ``train()`` or
    ``eval()`` call.
    """

    calibration: torch.Tensor | None
    owner: torch.Tensor  # (W,) the label index of each verbaliser word

    def __init__(
        self, model: nn.Module, calibration: torch.Tensor | None, mean_probability: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        # (R, T) calibration prompts, appended to a batch when the bias is not known.
        self.register_buffer("calibration", calibration, persistent=False)
        self.mean_probability = mean_probability
        self._bias: torch.Tensor | None = None  # (1, C), kept in evaluation mode

    def train(self, mode: bool = True) -> _Scorer:
        """Switch modes; the weights may change in between, so the kept bias goes."""
        self._bias = None
        return super().train(mode)

    def _calibrated(self, scores: torch.Tensor, rows: int) -> torch.Tensor:
        """(B + rows, C) scores → the first B rows' calibrated log-probabilities.

        ``rows`` > 0: the last rows are the calibration prompts, whose bias is computed (and kept
        in evaluation mode); 0: the kept bias is used, or the scores pass unchanged.
        """
        if rows == 0 and self._bias is None:
            return scores
        logp = torch.log_softmax(scores.float(), dim=-1)  # (B + R, C)
        if rows:
            extra = logp[-rows:]
            if self.mean_probability:  # log of the mean probability
                bias = torch.logsumexp(extra, 0, keepdim=True) - math.log(rows)
            else:
                bias = extra.mean(0, keepdim=True)
            if not self.training:
                self._bias = bias.detach()
            return logp[:-rows] - bias
        assert self._bias is not None
        return logp - self._bias

    def _with_calibration(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Append the calibration rows (right-padded to a common width) unless the bias is kept."""
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        extra = self.calibration
        if extra is None or (self._bias is not None and not self.training):
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
        mean_probability: bool = False,
    ) -> None:
        """Wrap a ``...ForMaskedLM`` model.

        Args:
            model: The masked LM (possibly wrapped by peft).
            words: Per label, the token ids of its verbaliser words.
            mask_id: The tokenizer's mask token id.
            use_head: Score through the MLM head (True) or against the input embeddings.
            calibration: Calibration prompts (R, T; -1 = padding), content-free or real texts.
            mean_probability: Bias = log of the mean probability over the calibration
                prompts (batch calibration), not their mean log-probability.

        """
        super().__init__(model, calibration, mean_probability)
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
        return ModelOutput(logits=self._calibrated(logits, extra))


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
        mean_probability: bool = False,
    ) -> None:
        """Wrap an encoder (any ``...ForMaskedLM``; only its body is used).

        Args:
            model: The encoder with its MLM head (the head is unused).
            label_texts: Token ids (with special tokens) of every verbaliser text.
            owner: The label index of each text.
            scale: Multiplier of the cosine similarities.
            calibration: Calibration prompts (R, T; -1 = padding), content-free or real texts.
            mean_probability: Bias = log of the mean probability over the calibration
                prompts (batch calibration), not their mean log-probability.

        """
        super().__init__(model, calibration, mean_probability)
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
        return ModelOutput(logits=self._calibrated(logits, extra))


class LabelLikelihoodScorer(_Scorer):
    """Log-probability of each label's tokens after the prompt (decoders).

    The prompt runs once with a KV cache; every label's tokens but its last then run as a
    continuation of that cache (B × W rows of a few tokens), so the cost of a long prompt (with
    demonstrations) is paid once, not once per label. Without gradients (evaluation and
    prediction), the tokens every prompt starts with (``prefix``: the instruction and the
    in-context demonstrations) run once per batch, not once per row: its KV cache is copied to
    every row and only each row's own text runs on top of it.
    """

    continuations: torch.Tensor  # (W, M) token ids, -1 padding
    prefix: torch.Tensor  # (P,) token ids every prompt starts with

    def __init__(
        self,
        model: nn.Module,
        words: list[list[int]],
        owner: list[int],
        normalize: bool,
        calibration: torch.Tensor | None = None,
        prefix: list[int] | None = None,
        mean_probability: bool = False,
    ) -> None:
        """Wrap a ``...ForCausalLM`` model.

        Args:
            model: The causal LM (possibly wrapped by peft).
            words: Token ids of every verbaliser continuation.
            owner: The label index of each continuation.
            normalize: Mean log-probability per token (True) or the sum.
            calibration: Calibration prompts (R, T; -1 = padding), content-free or real texts.
            mean_probability: Bias = log of the mean probability over the calibration
                prompts (batch calibration), not their mean log-probability.
            prefix: Token ids every prompt starts with (computed once per batch when no
                gradient is needed; rows that do not start with them are run whole).

        """
        super().__init__(model, calibration, mean_probability)
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
        prefix_ids = torch.tensor(prefix or [], dtype=torch.long)
        self.register_buffer("prefix", prefix_ids, persistent=False)  # (P,)

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
        steps = cont.shape[1]
        need_cache = steps > 1
        shared = self._shared_prefix(ids, lengths)
        if shared:
            out = self._on_prefix(body, ids, mask, positions, shared)
        else:
            out = body(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=need_cache
            )
        hidden = out[0]  # (B, T - shared, H)
        last = hidden[torch.arange(batch, device=ids.device), lengths - 1 - shared]  # (B, H)
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
            picked = self._continuations(body, head, cache, mask, lengths, hidden.dtype)
            logp = torch.cat([logp, picked], dim=-1)  # (B, W, M)
        logp = logp.masked_fill(~valid, 0.0)
        scores = logp.sum(-1)  # (B, W)
        if self.normalize:
            scores = scores / valid.sum(-1).to(scores.dtype)
        logits = _combine(scores, self.owner, self.labels)  # (B, C)
        return ModelOutput(logits=self._calibrated(logits, extra))

    def _continuations(
        self,
        body: nn.Module,
        head: nn.Module,
        cache: Any,
        mask: torch.Tensor,
        lengths: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """Log-probabilities (B, W, M - 1) of every label's tokens after its first.

        Every label's tokens but its last run side by side in one row per prompt, on the
        prompt's KV cache, under a mask that lets each token see the prompt and the earlier
        tokens of its own label only: the cache is read once per prompt, not once per label.
        Attention implementations that take no custom mask (flash attention) get one row per
        (prompt, label) instead, each on its own copy of the cache.
        """
        cont = self.continuations  # (W, M)
        words, steps = cont.shape
        batch, width, n = mask.shape[0], mask.shape[1], steps - 1
        tokens = cont.clamp(min=0)
        attention = getattr(getattr(body, "config", None), "_attn_implementation", None)
        if attention not in MASKABLE:
            cache.batch_repeat_interleave(words)  # rows: (b0 w0, b0 w1, ..., b1 w0, ...)
            feed_mask = torch.cat(
                [mask.repeat_interleave(words, 0), (cont[:, :-1] >= 0).long().repeat(batch, 1)],
                1,
            )  # (B W, T + M - 1)
            more = body(
                input_ids=tokens[:, :-1].repeat(batch, 1),
                attention_mask=feed_mask,
                position_ids=lengths.repeat_interleave(words)[:, None]
                + torch.arange(n, device=mask.device),
                use_cache=True,
                **{self._cache: cache},
            )[0]  # (B W, M - 1, H)
        else:
            step = torch.arange(n, device=mask.device)
            word = torch.arange(words, device=mask.device).repeat_interleave(n)  # (L,)
            at = step.repeat(words)  # (L,) a token's place in its label
            own = (word[:, None] == word[None, :]) & (at[None, :] <= at[:, None])  # (L, L)
            seen = torch.cat(
                [
                    mask.bool()[:, None, :].expand(batch, words * n, width),
                    own[None].expand(batch, -1, -1),
                ],
                dim=2,
            )[:, None]  # (B, 1, L, T + L): True where a query may look
            if attention == "eager":  # eager attention adds the mask to the scores
                seen = torch.zeros(seen.shape, dtype=dtype, device=mask.device).masked_fill(
                    ~seen, torch.finfo(dtype).min
                )
            more = body(
                input_ids=tokens[:, :-1].reshape(1, -1).expand(batch, -1),
                attention_mask=seen,
                position_ids=lengths[:, None] + at[None, :],
                use_cache=True,
                **{self._cache: cache},
            )[0]  # (B, L, H)
        rest = torch.log_softmax(head(more).float(), dim=-1)  # (B, L, V) or (B W, M - 1, V)
        target = tokens[:, 1:].reshape(1, -1, 1).expand(batch, -1, 1)  # (B, L, 1)
        return rest.reshape(batch, words * n, -1).gather(-1, target).view(batch, words, n)

    def _shared_prefix(self, ids: torch.Tensor, lengths: torch.Tensor) -> int:
        """Prefix tokens to run once for the batch: 0 with gradients or rows that differ."""
        width = int(self.prefix.numel())
        if width == 0 or torch.is_grad_enabled() or ids.shape[1] <= width:
            return 0
        same = torch.eq(ids[:, :width], self.prefix)
        if bool((lengths <= width).any()) or not bool(same.all()):
            return 0
        return width

    def _on_prefix(
        self,
        body: nn.Module,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        width: int,
    ) -> Any:
        """Run the shared prefix once, copy its KV cache to every row, run the rest on it."""
        first = body(
            input_ids=ids[:1, :width],
            attention_mask=mask[:1, :width],
            position_ids=positions[:1, :width],
            use_cache=True,
        )
        cache = first.get(self._cache)
        if cache is None:
            raise ModelError(
                f"method: prompting: {type(body).__name__} returned no KV cache → set "
                "model.gradient_checkpointing: false"
            )
        cache.batch_repeat_interleave(ids.shape[0])
        return body(
            input_ids=ids[:, width:],
            attention_mask=mask,
            position_ids=positions[:, width:],
            use_cache=True,
            **{self._cache: cache},
        )
