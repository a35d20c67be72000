"""Back-translation (Sennrich et al., 2016; Xie et al., 2020) through pluggable translators.

A translator is either a Python callable named ``module:function`` (``fn(texts) -> texts``,
given ``seed=`` when its signature takes it) or a seq2seq model folder (e.g. MarianMT's
``opus-mt-en-de`` saved with ``save_pretrained``) run with ``generate``: beam search, or seeded
nucleus sampling with ``sampling: true``. Texts go forward into the pivot language and back.

Token classification: entity mentions must keep their tokens and tags, so only the stretches
of ``O`` tokens between entities (``min_segment`` tokens or longer) are translated, each on
its own; the new tokens are tagged ``O``. Short stretches translate poorly, so expect fewer
useful sentences than for whole-sentence classification.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domaintune.config.augment import BackTranslationConfig
from domaintune.data.augment_text import split_tokens
from domaintune.data.readers import Example
from domaintune.errors import ConfigError, DataError, ModelError

if TYPE_CHECKING:
    from domaintune.data.augment import AugmentContext

Translator = Callable[[list[str], int], list[str]]
_CALLABLE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def augment(
    examples: list[Example], cfg: BackTranslationConfig, ctx: AugmentContext
) -> tuple[list[tuple[int, Example]], dict[str, Any]]:
    """``cfg.copies`` back-translated copies of a ``rate`` share of the examples."""
    forward = load_translator(cfg.forward, cfg, f"data.augment.{ctx.index}.forward")
    backward = load_translator(cfg.backward, cfg, f"data.augment.{ctx.index}.backward")
    out: list[tuple[int, Example]] = []
    translated = 0
    for copy in range(cfg.copies):
        texts: list[str] = []
        plans = []
        for i, example in enumerate(examples):
            if ctx.rng(i, copy).random() >= cfg.rate:
                continue
            plan = _plan(example, cfg.min_segment, ctx.char_tokens, texts)
            if plan is not None:
                plans.append((i, plan))
        seed = ctx.rng(-1, copy).getrandbits(31)
        back = backward(forward(texts, seed), seed + 1) if texts else []
        translated += len(texts)
        for i, plan in plans:
            new = _rebuild(examples[i], plan, back, ctx.char_tokens)
            if new is not None:
                out.append((i, new))
    return out, {"forward": cfg.forward, "backward": cfg.backward, "texts_translated": translated}


def _plan(example: Example, min_segment: int, char_tokens: bool, texts: list[str]) -> Any:
    """What of an example to translate: its text, or its long ``O`` stretches (indices to texts)."""
    if "tokens" not in example:
        if not example["text"].strip():
            return None
        texts.append(example["text"])
        return len(texts) - 1
    parts: list[Any] = []  # (tokens, tags) kept as they are, or an index into texts
    tokens, tags = example["tokens"], example["tags"]
    start = 0
    while start < len(tokens):
        end = start + 1
        while end < len(tokens) and (tags[end] == "O") == (tags[start] == "O"):
            end += 1
        if tags[start] == "O" and end - start >= min_segment:
            texts.append(("" if char_tokens else " ").join(tokens[start:end]))
            parts.append(len(texts) - 1)
        else:
            parts.append((tokens[start:end], tags[start:end]))
        start = end
    return parts if any(isinstance(p, int) for p in parts) else None


def _rebuild(example: Example, plan: Any, back: list[str], char_tokens: bool) -> Example | None:
    if isinstance(plan, int):
        text = back[plan].strip()
        return {**example, "text": text} if text else None
    tokens: list[str] = []
    tags: list[str] = []
    for part in plan:
        if isinstance(part, int):
            new = split_tokens(back[part], char_tokens)
            if not new:
                return None
            tokens += new
            tags += ["O"] * len(new)
        else:
            tokens += part[0]
            tags += part[1]
    return {**example, "tokens": tokens, "tags": tags}


def load_translator(spec: str, cfg: BackTranslationConfig, field: str) -> Translator:
    """A ``translate(texts, seed) -> texts`` function from a model folder or ``module:function``."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return _model_translator(folder, cfg, field)
    if not _CALLABLE.fullmatch(spec):
        raise ConfigError(
            f"{field}: {spec!r} is neither a folder nor 'module:function' → give a seq2seq model "
            "folder (e.g. a MarianMT model saved with save_pretrained) or a Python callable"
        )
    module_name, attribute = spec.split(":")
    try:
        target: Any = importlib.import_module(module_name)
        for name in attribute.split("."):
            target = getattr(target, name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"{field}: {spec!r}: cannot import it ({exc}) → check the name and that the module "
            "is importable (on PYTHONPATH)"
        ) from None
    if not callable(target):
        raise ConfigError(f"{field}: {spec!r} is not callable → name a function")
    takes_seed = "seed" in inspect.signature(target).parameters

    def translate(texts: list[str], seed: int) -> list[str]:
        result = target(texts, seed=seed) if takes_seed else target(texts)
        if not isinstance(result, list) or len(result) != len(texts):
            raise DataError(
                f"{field}: {spec!r} returned {type(result).__name__} of "
                f"{len(result) if isinstance(result, list) else '?'} items for {len(texts)} "
                "texts → return a list with one translation per text"
            )
        return [str(r) for r in result]

    return translate


def _model_translator(folder: Path, cfg: BackTranslationConfig, field: str) -> Translator:
    """Translation with a seq2seq model folder and ``generate`` (on the GPU when there is one)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        # Not models.load_tokenizer: MarianMT has a SentencePiece (slow) tokenizer only.
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForSeq2SeqLM.from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{field}: {str(folder)!r}: cannot load a seq2seq model "
            f"({str(exc).splitlines()[0][:150]}) → give a translation model folder (MarianMT, "
            "T5, mBART) with its tokenizer"
        ) from None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()

    def translate(texts: list[str], seed: int) -> list[str]:
        out: list[str] = []
        for start in range(0, len(texts), cfg.batch_size):
            batch = tokenizer(
                texts[start : start + cfg.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=512,
            ).to(device)
            options: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens}
            if cfg.sampling:
                options.update(do_sample=True, top_p=cfg.top_p, top_k=0, num_beams=1)
            else:
                options.update(do_sample=False, num_beams=cfg.num_beams)
            devices = [torch.cuda.current_device()] if device == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed + start)  # sampling is reproducible per batch
                ids = model.generate(**batch, **options)
            out += tokenizer.batch_decode(ids, skip_special_tokens=True)
        return out

    return translate
