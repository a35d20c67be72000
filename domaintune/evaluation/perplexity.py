"""Language-model perplexity of any model folder on any text, measured as runs measure it.

Masked LMs are scored on 15% of the tokens, masked with ``[MASK]`` at positions fixed by each
block's content (so two models are always scored on the same positions); causal LMs on every
next token. Texts are packed into blocks of ``max_length`` tokens like training data.
"""

from __future__ import annotations

from typing import Any


def text_perplexity(
    model: str,
    texts: list[str],
    *,
    max_length: int = 128,
    batch_size: int = 64,
    max_tokens: int | None = 100_000,
    objective: str = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """Perplexity of a model (alias, folder, ``.gguf`` or hub id) on ``texts``.

    Args:
        model: What ``model.name`` in a recipe accepts, or a run's ``final/`` folder.
        texts: Documents (one string each).
        max_length: Block length in tokens.
        batch_size: Blocks per forward pass.
        max_tokens: Score at most about this many tokens (the first blocks); None: all.
        objective: ``mlm``, ``clm`` or ``auto`` (by model type).
        precision: ``auto`` (bf16 where native), ``bf16`` or ``fp32``.

    Returns:
        ``{"perplexity", "loss", "targets", "objective"}``.

    """
    import torch

    from domaintune.config.sections import LanguageModelingTaskConfig, ModelConfig
    from domaintune.models.load import (
        load_model,
        load_tokenizer,
        model_type,
        quiet_libraries,
        resolve_source,
    )
    from domaintune.tasks.inference import infer
    from domaintune.tasks.language_modeling import LanguageModelingTask
    from domaintune.training.precision import cpu_has_bf16

    quiet_libraries()
    source = resolve_source(ModelConfig(name=model))
    tokenizer = load_tokenizer(source)
    task = LanguageModelingTask(
        LanguageModelingTaskConfig(name="language_modeling", objective=objective)  # type: ignore[arg-type]
    )
    task.bind(model_type(source), tokenizer)
    encoded = task.encode([{"text": t} for t in texts if t.strip()], tokenizer, max_length)
    if max_tokens is not None:
        keep = max(1, max_tokens // max_length)
        encoded = encoded.subset(list(range(min(keep, len(encoded)))))
    lm = load_model(source, task.auto_class())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lm.to(device)
    bf16 = precision == "bf16" or (
        precision == "auto"
        and (torch.cuda.is_bf16_supported() if device == "cuda" else cpu_has_bf16())
    )
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        outputs = infer(task.wrap(lm), task, encoded, batch_size, tokenizer.pad_token_id, device)
    return {**task.metrics(outputs, []), "objective": task.objective}
