"""Describe labelled task data before training: size, labels and lengths, with length advice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from domaintune.evaluation.words import sample, split_words

DEFAULT_MAX_LENGTH = 128  # data.max_length's default
LENGTH_STEPS = (64, 128, 256, 512, 1024, 2048)
IMBALANCE = 10.0  # largest/smallest label count above which the labels are called imbalanced


def read_task_examples(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> list[dict[str, Any]]:
    """Read a labelled task file (.jsonl/.csv text and label, or .conll), cleaned as in training.

    Args:
        path: The file.
        text_column: Text column of .jsonl/.csv files.
        label_column: Label column of .jsonl/.csv files.

    Returns:
        Examples with ``text``/``label`` or ``tokens``/``tags``.

    """
    from domaintune.config.sections import DataConfig
    from domaintune.data.pipeline import clean_example
    from domaintune.data.readers import Kind, detect_format, read_split, resolve_path

    cfg = DataConfig(train=str(path), text_column=text_column, label_column=label_column)
    kind: Kind = "tokens" if detect_format(resolve_path(str(path))) == "conll" else "text"
    examples = read_split(str(path), cfg, kind, need_labels=True)
    for example in examples:
        clean_example(example)
    return [dict(example) for example in examples]


def length_stats(lengths: list[int]) -> dict[str, float]:
    """Mean, median, 95th percentile, max, and the shares over 128 and 256 of some lengths."""
    values = np.asarray(lengths or [0])
    return {
        "mean": round(float(values.mean()), 2),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "max": int(values.max()),
        "over_128": round(float((values > 128).mean()), 4),
        "over_256": round(float((values > 256).mean()), 4),
    }


def _label_counts(examples: list[dict[str, Any]]) -> dict[str, Any]:
    if "tags" in examples[0]:
        entities = Counter(
            tag[2:] for ex in examples for tag in ex["tags"] if str(tag).startswith("B-")
        )
        tags = Counter(str(tag) for ex in examples for tag in ex["tags"])
        with_entity = sum(any(str(t).startswith("B-") for t in ex["tags"]) for ex in examples)
        return {
            "kind": "tags",
            "entities": dict(entities.most_common()),
            "entity_shares": _shares(entities),
            "tags": dict(tags.most_common()),
            "examples_with_entity": round(with_entity / len(examples), 4),
        }
    labels = Counter(str(label) for ex in examples for label in _labels_of(ex))
    return {"kind": "labels", "labels": dict(labels.most_common()), "shares": _shares(labels)}


def _labels_of(example: dict[str, Any]) -> list[Any]:
    label = example.get("label")
    return list(label) if isinstance(label, list) else [label]  # multi-label rows: each counts


def _shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in counts.most_common()}


def _token_lengths(tokenizer: Any, examples: list[dict[str, Any]]) -> list[int]:
    """Tokens per example with special tokens, untruncated (what data.max_length must hold)."""
    if "tokens" in examples[0]:
        enc = tokenizer([ex["tokens"] for ex in examples], is_split_into_words=True)
    else:
        pairs = [ex["text_pair"] for ex in examples] if "text_pair" in examples[0] else None
        enc = tokenizer([ex["text"] for ex in examples], pairs)
    return [len(ids) for ids in enc["input_ids"]]


def length_advice(tokens: dict[str, float], model_max: int | None) -> list[str]:
    """Advice on ``data.max_length`` from token-length statistics.

    Args:
        tokens: ``length_stats`` of token lengths.
        model_max: The model's maximum positions, or None if unknown.

    Returns:
        Zero or more advice strings.

    """
    p95 = int(tokens["p95"])
    step = next((s for s in LENGTH_STEPS if s >= p95), LENGTH_STEPS[-1])
    if model_max is not None and step > model_max:
        return [
            f"p95 length {p95} tokens exceeds the model's {model_max} positions: longer "
            f"texts are truncated → set data.max_length {model_max}, or split long texts"
        ]
    if p95 > DEFAULT_MAX_LENGTH:
        return [
            f"p95 length {p95} tokens: set data.max_length ≥ {step} (the default "
            f"{DEFAULT_MAX_LENGTH} truncates {tokens['over_128']:.0%} of examples)"
        ]
    return [f"p95 length {p95} tokens: the default data.max_length {DEFAULT_MAX_LENGTH} holds it"]


def describe_task_data(
    examples: list[dict[str, Any]], tokenizer: Any, max_docs: int = 5_000, seed: int = 0
) -> dict[str, Any]:
    """Size, label (or entity-type) distribution and length statistics of labelled data.

    Args:
        examples: ``text``/``label`` or ``tokens``/``tags`` examples.
        tokenizer: The model's fast tokenizer.
        max_docs: Length statistics use at most this many examples (a seeded sample); label
            counts use all of them.
        seed: Seed of the sample.

    Returns:
        ``size``, ``labels`` (counts and shares; for tags, entity types counted from ``B-``
        tags), ``length_words``, ``length_tokens`` (with special tokens) and ``advice``.

    """
    subset = sample(examples, max_docs, seed)
    words = [len(ex["tokens"]) if "tokens" in ex else len(split_words(ex["text"])) for ex in subset]
    tokens = length_stats(_token_lengths(tokenizer, subset))
    model_max = getattr(tokenizer, "model_max_length", None)
    model_max = model_max if isinstance(model_max, int) and model_max < 1_000_000 else None
    labels = _label_counts(examples)
    advice = length_advice(tokens, model_max)
    counts = list((labels.get("labels") or labels.get("entities") or {}).values())
    if len(counts) > 1 and max(counts) / max(min(counts), 1) > IMBALANCE:
        advice.append(
            f"labels are imbalanced (largest/smallest = {max(counts) / max(min(counts), 1):.0f}): "
            "judge runs by macro F1, not accuracy"
        )
    return {
        "size": len(examples),
        "sampled": len(subset),
        "labels": labels,
        "length_words": length_stats(words),
        "length_tokens": tokens,
        "advice": advice,
    }
