"""Contextual substitution (Kobayashi, 2018; Kumar et al., 2020) with a masked language model.

Some words of each example are replaced by words the model finds likely in their context. Two
scorers:

- ``mlm_head``: the chosen words are masked and the MLM head's logits rank the vocabulary (the
  papers' method). Needs a checkpoint with a trained MLM head (a BERT from the hub, or a DAPT
  run's ``final/``).
- ``embeddings``: the words stay visible; vocabulary words are ranked by the cosine between
  their input embedding (tied to the output embedding in BERT) and the word's last hidden
  state. The built-in MiniLM has **no MLM head** (its head would be random), so ``auto`` uses
  this scorer for it; it proposes near neighbours in context ("rose" in a market sentence:
  rises, swelled, popped), antonyms included ("strong" → "weak"), so it is weaker and can flip
  a sentiment label.

Replacements are whole-word vocabulary entries (no ``##`` pieces) other than the word and its
inflections (a shared prefix of four letters); each is drawn uniformly from the ``top_k`` best.
With entity tags only ``O`` tokens change, one token for one token, so tags stay aligned.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

from domaintune.config.augment import ContextualConfig
from domaintune.config.sections import ModelConfig
from domaintune.data.augment_text import CJK, is_cjk
from domaintune.data.readers import Example
from domaintune.errors import ConfigError

if TYPE_CHECKING:
    from domaintune.data.augment import AugmentContext

# Words (and separators) of a text: CJK characters, runs of other non-space characters, spaces.
_SEGMENTS = re.compile(f"[{CJK}]|[^\\s{CJK}]+|\\s+")
_SEARCH = 32  # candidates looked at beyond top_k, to make room for the excluded ones


def augment(
    examples: list[Example], cfg: ContextualConfig, ctx: AugmentContext
) -> tuple[list[tuple[int, Example]], dict[str, Any]]:
    """``cfg.copies`` copies of each example with ``rate`` of its eligible words replaced."""
    import torch

    from domaintune.models.load import load_model, load_tokenizer, quiet_libraries, resolve_source

    source = resolve_source(
        ModelConfig(name=cfg.model) if cfg.model else ctx.model or ModelConfig()
    )
    tokenizer = load_tokenizer(source)
    from transformers import AutoModelForMaskedLM

    quiet_libraries()

    with torch.random.fork_rng(devices=[]):  # a missing head is initialised from the global RNG
        model, loading = load_model(source, AutoModelForMaskedLM, output_loading_info=True)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    has_head = not loading.get("missing_keys")
    scorer = cfg.scorer if cfg.scorer != "auto" else ("mlm_head" if has_head else "embeddings")
    if scorer == "mlm_head" and not has_head:
        raise ConfigError(
            f"data.augment.{ctx.index}.scorer: mlm_head: {source.path} has no trained MLM head "
            "→ use scorer: embeddings, or a model with one (e.g. a DAPT run's final/)"
        )
    info: dict[str, Any] = {"model": source.path, "scorer": scorer, "has_mlm_head": has_head}
    if not has_head:
        info["note"] = "no trained MLM head: candidates ranked by tied input embeddings"
        logging.getLogger("domaintune").warning(
            "contextual augmentation: %s has no trained MLM head; using the embeddings scorer",
            os.path.basename(source.path.rstrip("/")) or source.path,
        )
    ids, words = candidate_vocabulary(tokenizer)
    table = model.get_input_embeddings().weight.detach()[ids]  # (C, H)
    table = torch.nn.functional.normalize(table, dim=-1)
    stop = _stop_words()
    out: list[tuple[int, Example]] = []
    for copy in range(cfg.copies):
        jobs = []
        for i, example in enumerate(examples):
            segments, editable = _segments(example)
            eligible = [j for j in editable if _eligible(segments[j], stop)]
            if not eligible:
                continue
            rng = ctx.rng(i, copy)
            count = min(len(eligible), max(1, round(cfg.rate * len(eligible))))
            jobs.append((i, segments, sorted(rng.sample(eligible, count)), rng))
        for start in range(0, len(jobs), cfg.batch_size):
            batch = jobs[start : start + cfg.batch_size]
            scores = _score(model, tokenizer, batch, scorer, ids, table, cfg.max_length)
            for (i, segments, chosen, rng), rows in zip(batch, scores, strict=True):
                new = list(segments)
                for j, row in zip(chosen, rows, strict=True):
                    pick = _pick(row, words, segments[j], cfg.top_k, rng)
                    if pick is not None:
                        new[j] = pick
                if new != segments:
                    out.append((i, _rebuild(examples[i], new)))
    return out, info


def candidate_vocabulary(tokenizer: Any) -> tuple[list[int], list[str]]:
    """Ids and words of whole-word vocabulary entries: letters only, no pieces, no specials."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    marked = (
        sum(t.startswith(("▁", "Ġ")) for t in vocab if t) > len(vocab) // 4
    )  # SentencePiece/BPE
    ids, words = [], []
    for i, token in enumerate(vocab):
        if i in special or not token or token.startswith("##"):
            continue
        if marked:
            if not token.startswith(("▁", "Ġ")):
                continue
            token = token[1:]
        if token.isalpha() and (len(token) >= 2 or is_cjk(token)):
            ids.append(i)
            words.append(token)
    return ids, words


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def _eligible(word: str, stop: frozenset[str]) -> bool:
    """A CJK character, or a letter word that is no stop word and not in capitals (acronyms)."""
    if is_cjk(word):
        return len(word) == 1
    return word.isalpha() and len(word) >= 2 and word.lower() not in stop and not word.isupper()


def _segments(example: Example) -> tuple[list[str], list[int]]:
    """The example as segments that join back into it, and which segments may change."""
    if "tokens" in example:
        segments = [part for token in example["tokens"] for part in (token, " ")][:-1]
        return segments, [2 * k for k, tag in enumerate(example["tags"]) if tag == "O"]
    segments = _SEGMENTS.findall(example["text"])
    return segments, [k for k, s in enumerate(segments) if not s.isspace()]


def _rebuild(example: Example, segments: list[str]) -> Example:
    if "tokens" in example:
        return {**example, "tokens": segments[::2]}
    return {**example, "text": "".join(segments)}


def _score(
    model: Any,
    tokenizer: Any,
    batch: list[Any],
    scorer: str,
    ids: list[int],
    table: Any,
    max_length: int,
) -> list[list[Any]]:
    """Scores over the candidate vocabulary for each chosen word: (C,) tensors per word."""
    import torch

    texts, starts = [], []
    for _, segments, chosen, _ in batch:
        parts = list(segments)
        if scorer == "mlm_head":
            for j in chosen:
                parts[j] = tokenizer.mask_token
        offsets = [sum(len(p) for p in parts[:j]) for j in chosen]
        texts.append("".join(parts))
        starts.append(offsets)
    enc = tokenizer(
        texts,
        return_offsets_mapping=True,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    spans = enc.pop("offset_mapping")  # (B, T, 2)
    enc = enc.to(model.device)
    where: list[list[int | None]] = []  # for each chosen word, its row in ``picked`` or None
    rows_b: list[int] = []
    rows_t: list[int] = []
    for b, offsets in enumerate(starts):
        first = {int(s): t for t, (s, e) in enumerate(spans[b].tolist()) if e > s}
        where.append([])
        for offset in offsets:
            t = first.get(offset)  # None: cut off by max_length, the word stays
            where[-1].append(None if t is None else len(rows_b))
            if t is not None:
                rows_b.append(b)
                rows_t.append(t)
    with torch.no_grad():
        hidden = model.base_model(**enc).last_hidden_state  # (B, T, H)
        picked = hidden[rows_b, rows_t]  # (N, H)
        head = getattr(model, "cls", None)  # BERT's MLM head (RoBERTa's is lm_head)
        head = head if head is not None else getattr(model, "lm_head", None)
        if scorer == "embeddings":
            scores = torch.nn.functional.normalize(picked, dim=-1) @ table.T  # (N, C)
        elif head is not None:  # the vocabulary projection at the chosen positions only
            scores = head(picked)[:, ids]  # (N, C)
        else:
            scores = model(**enc).logits[rows_b, rows_t][:, ids]  # (N, C)
    return [[None if r is None else scores[r] for r in row] for row in where]


def _pick(scores: Any, words: list[str], original: str, top_k: int, rng: Any) -> str | None:
    """A uniform draw from the ``top_k`` best words that are not the word or its inflections."""
    if scores is None:
        return None
    best = scores.topk(min(len(words), top_k + _SEARCH)).indices.tolist()
    low = original.lower()
    keep = [words[c] for c in best if not _same_word(words[c].lower(), low)][:top_k]
    if not keep:
        return None
    pick = rng.choice(keep)
    return pick[0].upper() + pick[1:] if original[:1].isupper() else pick


def _same_word(a: str, b: str) -> bool:
    """Equal, or sharing a prefix of four letters (rose/roses, increase/increased)."""
    return a == b or (min(len(a), len(b)) >= 4 and a[:4] == b[:4])
