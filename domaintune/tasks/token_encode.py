"""Token-classification encoding: words (or raw text) to sub-words, tags on first sub-words.

With knowledge attached (``data/knowledge.py``), the facts that fit follow as a second segment
(``[CLS] words [SEP] facts [SEP]``). Their positions belong to no word (``word_ids`` -1) and
carry no tag (-100) and, for raw text, no character offsets, so the loss, the CRF, the metrics
and the predicted spans cover the example's own words only, exactly as without facts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domaintune.data.encode import Encoded
from domaintune.data.knowledge import facts_that_fit
from domaintune.data.readers import Example

IGNORE = -100


def _tokenize(
    tokenizer: Any, examples: list[Example], facts: list[str] | None, raw: bool, max_length: int
) -> Any:
    """One fast-tokenizer call; with ``facts`` only the facts may be truncated."""
    truncation: str | bool = "only_second" if facts is not None else True
    if raw:
        return tokenizer(
            [e["text"] for e in examples],
            facts,
            truncation=truncation,
            max_length=max_length,
            return_offsets_mapping=True,
        )
    return tokenizer(
        [e["tokens"] for e in examples],
        [f.split() for f in facts] if facts is not None else None,
        is_split_into_words=True,
        truncation=truncation,
        max_length=max_length,
    )


def encode_tokens(
    examples: list[Example], tokenizer: Any, max_length: int, labels: list[str]
) -> Encoded:
    """Tokenise pre-split words (or raw text), align tags to first sub-words, append facts."""
    raw = bool(examples) and "tokens" not in examples[0]
    enc = _tokenize(tokenizer, examples, None, raw, max_length)
    extra = tokenizer.num_special_tokens_to_add(pair=True) - tokenizer.num_special_tokens_to_add()
    used = [len(ids) for ids in enc["input_ids"]]
    facts = facts_that_fit(tokenizer, examples, used, max_length, extra)
    rows = [(enc, i) for i in range(len(examples))]
    paired = [i for i, f in enumerate(facts) if f]
    if paired:  # only the examples with facts are tokenised again, as pairs
        pairs = _tokenize(
            tokenizer,
            [examples[i] for i in paired],
            [facts[i] or "" for i in paired],
            raw,
            max_length,
        )
        for j, i in enumerate(paired):
            rows[i] = (pairs, j)
    index = {label: i for i, label in enumerate(labels)}
    features: dict[str, list[np.ndarray]] = {"input_ids": [], "word_ids": []}
    if raw:
        features["offsets"] = []
    if paired and "token_type_ids" in enc:
        features["token_type_ids"] = []
    with_tags = bool(examples) and "tags" in examples[0]
    if with_tags:
        features["labels"] = []
    for example, (source, row) in zip(examples, rows, strict=True):
        word_ids, segments = source.word_ids(row), source.sequence_ids(row)
        features["input_ids"].append(np.asarray(source["input_ids"][row], dtype=np.int32))
        # -1 marks special tokens, non-first sub-words and facts: those positions carry no tag.
        first = [-1] * len(word_ids)
        previous = None
        for pos, (word, segment) in enumerate(zip(word_ids, segments, strict=True)):
            if segment == 0 and word is not None and word != previous:
                first[pos] = word
            previous = word if segment == 0 else None
        features["word_ids"].append(np.asarray(first, dtype=np.int32))
        if raw:
            offsets = np.asarray(source["offset_mapping"][row], dtype=np.int32).reshape(-1, 2)
            offsets[[s != 0 for s in segments]] = 0  # facts point into no input text
            features["offsets"].append(offsets.reshape(-1))
        if "token_type_ids" in features:
            features["token_type_ids"].append(
                np.asarray(source["token_type_ids"][row], dtype=np.int8)
            )
        if with_tags:
            tags = example["tags"]
            features["labels"].append(
                np.asarray([index[tags[w]] if w >= 0 else IGNORE for w in first], dtype=np.int64)
            )
    return Encoded(features)
