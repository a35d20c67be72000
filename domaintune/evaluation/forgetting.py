"""Forgetting in language-model runs: perplexity on domain and general text, before and after.

The general text is ``data.reference_text``, read, cleaned and packed like the training text
(``REFERENCE_TOKENS`` tokens at most); the domain text is the test split. Decoder generation
runs (SFT) measure the general text too, packed and scored as causal-LM blocks.
"""

from __future__ import annotations

from typing import Any

from domaintune.config.sections import DataConfig, TrainConfig
from domaintune.data.encode import Encoded, encode_split
from domaintune.data.pipeline import RawSplits, clean_example
from domaintune.data.readers import read_split

REFERENCE_TOKENS = 50_000


def reference_task(task: Any, model_type: str, tokenizer: Any) -> Any | None:
    """The task that packs and scores general text for ``task``; None where it has no meaning.

    Language modelling scores it with its own objective; decoder generation (SFT) with a
    causal-LM task (the same target-positions module as its training); other tasks never.
    """
    if task.kind == "lm":
        return task
    if task.kind != "gen" or getattr(task, "encoder_decoder", True):
        return None
    from domaintune.config.sections import LanguageModelingTaskConfig
    from domaintune.tasks.language_modeling import LanguageModelingTask

    scorer = LanguageModelingTask(
        LanguageModelingTaskConfig(name="language_modeling", objective="clm")
    )
    scorer.bind(model_type, tokenizer)
    return scorer


def reference_split(data: DataConfig, task: Any, tokenizer: Any, tok_id: str) -> Encoded | None:
    """The general reference text, packed like the training text (REFERENCE_TOKENS at most).

    ``task`` is the one :func:`reference_task` chose (None: no general text is measured).
    """
    if data.reference_text is None or task is None:
        return None
    examples = read_split(data.reference_text, data.model_copy(update={"format": "auto"}), "lm")
    if data.clean.normalize:
        for example in examples:
            clean_example(example)
    task.fit_labels(RawSplits({"train": examples}, {}))
    encoded = encode_split(task, examples, tokenizer, tok_id, data)
    keep = max(1, REFERENCE_TOKENS // max(1, data.max_length))
    return encoded.subset(list(range(min(keep, len(encoded)))))


def perplexity(
    module: Any, task: Any, data: Encoded, cfg: TrainConfig, tokenizer: Any, accelerator: Any
) -> float:
    """Perplexity of ``module`` on encoded blocks (sharded over processes as in evaluation)."""
    from domaintune.tasks.inference import infer

    outputs = infer(
        module,
        task,
        data,
        cfg.eval_batch_size,
        tokenizer.pad_token_id,
        accelerator.device,
        accelerator,
    )
    return round(float(task.metrics(outputs, [])["perplexity"]), 4)


def forgetting_report(
    before: dict[str, float] | None, after: dict[str, float], data: DataConfig
) -> dict[str, Any]:
    """Perplexities before and after training, on domain and general text."""
    out: dict[str, Any] = {}
    for name, value in after.items():
        entry: dict[str, Any] = {"after": value}
        if before is not None and name in before:
            entry["before"] = before[name]
            entry["change"] = round(value / before[name], 4) if before[name] else None
        out[name] = entry
    if "in_domain" in out:
        out["in_domain"]["text"] = "test split"
    if "general" in out:
        out["general"]["text"] = data.reference_text
    else:
        out["note"] = "no general text: set data.reference_text to measure forgetting"
    return out
