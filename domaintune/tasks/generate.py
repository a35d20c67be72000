"""Batched text generation with ``model.generate`` and a ``GenerationConfig`` from the recipe.

Prompts are sorted by length into batches (left-padded for decoders, whose new tokens must
follow the prompt directly), sharded over processes like inference, and put back in input
order. Stop strings go to ``generate`` (which stops there) and the text is cut at the first.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from domaintune.config.generation import DecodingConfig
from domaintune.data.batching import sorted_batches


def generation_config(model: nn.Module, decoding: DecodingConfig, tokenizer: Any) -> Any:
    """The model's own ``GenerationConfig`` (its EOS ids) updated with the recipe's decoding."""
    from transformers import GenerationConfig

    base = getattr(model, "generation_config", None)
    config = copy.deepcopy(base) if base is not None else GenerationConfig()
    own = config.eos_token_id
    eos = set(own if isinstance(own, list) else [] if own is None else [own])
    if tokenizer.eos_token_id is not None:
        eos.add(tokenizer.eos_token_id)
    options: dict[str, Any] = {
        "max_new_tokens": decoding.max_new_tokens,
        "do_sample": decoding.strategy == "sample",
        "num_beams": decoding.num_beams if decoding.strategy == "beam" else 1,
        "repetition_penalty": decoding.repetition_penalty,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": sorted(eos) or None,
        "stop_strings": list(decoding.stop) or None,
        "max_length": None,
    }
    if decoding.strategy == "sample":
        options.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=decoding.top_k)
    else:  # no sampling options: transformers warns about those it would ignore
        options.update(temperature=None, top_p=None, top_k=None)
    config.update(**options)
    return config


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first stop string (generation stops after the token holding it)."""
    cuts = [text.find(s) for s in stop if s in text]
    return text[: min(cuts)] if cuts else text


def generate_texts(
    model: nn.Module,
    tokenizer: Any,
    prompts: list[list[int]],
    decoding: DecodingConfig,
    *,
    encoder_decoder: bool,
    batch_size: int,
    device: torch.device | str = "cpu",
    accelerator: Any = None,
) -> list[str]:
    """Generate a continuation (decoders) or an output (encoder-decoders) for each prompt.

    Args:
        model: A transformers model (or peft model) with ``generate``.
        tokenizer: Its tokenizer (decoding and stop strings).
        prompts: Token ids of each prompt (already cut to the model's input length).
        decoding: The recipe's decoding options.
        encoder_decoder: True for T5/BART-style models (outputs hold no prompt).
        batch_size: Prompts per ``generate`` call.
        device: Where the model is.
        accelerator: Shards batches over processes and applies autocast when given.

    Returns:
        The generated texts, special tokens removed, cut at the first stop string, stripped.

    """
    config = generation_config(model, decoding, tokenizer)
    pad = int(tokenizer.pad_token_id)
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    results: list[tuple[int, str]] = []
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(decoding.seed)
        for indices in sorted_batches([len(p) for p in prompts], batch_size)[rank::world]:
            ids, mask = _left_pad([prompts[i] for i in indices], pad, not encoder_decoder)
            ids, mask = ids.to(device), mask.to(device)
            context: Any = accelerator.autocast() if accelerator is not None else nullcontext()
            with context:
                out = model.generate(  # type: ignore[operator]
                    input_ids=ids,
                    attention_mask=mask,
                    generation_config=config,
                    tokenizer=tokenizer if decoding.stop else None,
                )
            new = out if encoder_decoder else out[:, ids.shape[1] :]  # (B, L)
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, text in zip(indices, texts, strict=True):
                results.append((i, cut_at_stop(text, decoding.stop).strip()))
    model.train(was_training)
    if world > 1:
        from accelerate.utils import gather_object

        results = gather_object(results)
    ordered = [""] * len(prompts)
    for index, text in results:
        ordered[index] = text
    return ordered


def _left_pad(rows: list[list[int]], pad: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists to one width (on the left for decoders): ids and attention mask, (B, T)."""
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask
