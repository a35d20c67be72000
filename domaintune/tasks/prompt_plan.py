"""Templates and verbalisers turned into token ids: the fixed parts of every prompt.

A template is cut at ``{text}`` into the tokens before and after the example's text; those
and the model's special tokens are fixed, so only the text is truncated to ``max_length``. The
pieces are tokenised apart (with byte-level BPE the tokens at the seams can differ from
tokenising the whole string at once; training and prediction encode alike, so this is harmless).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domaintune.config.methods import PROMPT_MASK, PROMPT_TEXT
from domaintune.errors import ConfigError

ENCODER_TEMPLATE = "{text} It was [MASK]."
DECODER_TEMPLATE = "Text: {text}\nAnswer:"
DECODER_INSTRUCTION = "Classify the text into one of these categories: {labels}."
CONTENT_FREE = ("N/A", "")  # contextual calibration inputs (Zhao et al., 2021)
_SLOT = "\x00"  # stands for the text while a chat template is rendered, then cut out


@dataclass
class PromptPlan:
    """The token ids around each example's text and the ids that stand for each label."""

    lead: list[int]  # the tokenizer's leading special tokens ([CLS], <s>)
    before: list[int]  # template tokens before the text (with instruction and demonstrations)
    after: list[int]  # template tokens after the text (with the chat turn's end)
    trail: list[int]  # trailing special tokens ([SEP], </s>); none for decoders
    words: list[list[int]]  # per verbaliser word: its token ids (cloze: the first only)
    owner: list[int]  # per verbaliser word: its label index
    rendered: tuple[str, str] = ("", "")  # the strings of before and after, for the run's state
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fixed(self) -> int:
        """Tokens of every prompt besides the text."""
        return len(self.lead) + len(self.before) + len(self.after) + len(self.trail)


def verbalizer(labels: list[str], given: dict[str, str | list[str]] | None) -> list[list[str]]:
    """Per label, its words: the recipe's, or the label name ('_' read as a space)."""
    if given is None:
        return [[label.replace("_", " ")] for label in labels]
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise ConfigError(
            f"method.verbalizer: {unknown[0]!r} is not a label of the training data → use "
            f"the labels {labels}"
        )
    missing = [label for label in labels if label not in given]
    if missing:
        raise ConfigError(
            f"method.verbalizer: no word for label {missing[0]!r} → add '{missing[0]}: <word>' "
            "(every label needs one), or leave verbalizer out to use the label names"
        )
    return [[w] if isinstance(w, str) else list(w) for w in (given[label] for label in labels)]


def special_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text."""
    enc = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    first = special.index(0)
    last = len(special) - special[::-1].index(0)
    return list(ids[:first]), list(ids[last:])


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def encoder_plan(tokenizer: Any, template: str, words: list[list[str]], cloze: bool) -> PromptPlan:
    """Template pieces and verbaliser ids for an encoder (cloze or similarity scoring)."""
    mask = tokenizer.mask_token
    if cloze and (mask is None or PROMPT_MASK not in template):
        raise ConfigError(
            f"method.template: {template!r}: cloze scoring needs a {PROMPT_MASK} in the "
            "template and a tokenizer with a mask token → add it, or use scoring: similarity"
        )
    if mask is not None:
        template = template.replace(PROMPT_MASK, mask)
    head, tail = template.split(PROMPT_TEXT)
    lead, trail = special_frame(tokenizer)
    flat = [w for ws in words for w in ws]
    owner = [c for c, ws in enumerate(words) for _ in ws]
    if cloze:
        # Encoders predict one token at [MASK]: a word is its first sub-token (documented).
        ids = [_ids(tokenizer, " " + w)[:1] for w in flat]
        seen: dict[int, str] = {}
        for word, token, label in zip(flat, ids, owner, strict=True):
            if not token or token[0] == tokenizer.unk_token_id:
                raise ConfigError(
                    f"method.verbalizer: {word!r}: not in the model's vocabulary → choose a "
                    "word the tokenizer knows"
                )
            if token[0] in seen and owner[flat.index(seen[token[0]])] != label:
                raise ConfigError(
                    f"method.verbalizer: {word!r} and {seen[token[0]]!r} start with the same "
                    "token, and cloze scoring reads one token → choose words that differ in "
                    "their first sub-token"
                )
            seen[token[0]] = word
    else:  # similarity: every word is a text of its own, with the special tokens
        ids = [lead + _ids(tokenizer, w) + trail for w in flat]
    return PromptPlan(
        lead, _ids(tokenizer, head), _ids(tokenizer, tail), trail, ids, owner, (head, tail)
    )


def decoder_plan(
    tokenizer: Any,
    template: str,
    instruction: str,
    words: list[list[str]],
    demonstrations: list[tuple[str, int]],
) -> PromptPlan:
    """Prompt pieces and label continuations for a decoder.

    Chat models (a tokenizer with a chat template) get the instruction with the first example
    as a user turn, each demonstration's label as an assistant turn, and the label to score as
    the assistant's answer with its end-of-turn marker. Others get plain text: instruction,
    demonstrations as ``template label`` paragraphs, then the example's template; the label
    continues after a space and ends with a newline.
    """
    flat = [w for ws in words for w in ws]
    owner = [c for c, ws in enumerate(words) for _ in ws]
    top = instruction.replace("{labels}", ", ".join(ws[0] for ws in words))

    def fill(text: str) -> str:
        return template.replace(PROMPT_TEXT, text)

    if getattr(tokenizer, "chat_template", None):
        turns: list[dict[str, str]] = []
        for text, label in demonstrations:
            turns.append({"role": "user", "content": fill(text)})
            turns.append({"role": "assistant", "content": words[label][0]})
        turns.append({"role": "user", "content": fill(_SLOT)})
        turns[0]["content"] = f"{top}\n\n{turns[0]['content']}" if top else turns[0]["content"]

        def render(extra: list[dict[str, str]], generation: bool) -> str:
            return str(
                tokenizer.apply_chat_template(
                    turns + extra, tokenize=False, add_generation_prompt=generation
                )
            )

        prompt = render([], True)
        continuations = []
        for word in flat:
            full = render([{"role": "assistant", "content": word}], False)
            if not full.startswith(prompt):
                raise ConfigError(
                    f"model: the chat template renders an answer that does not continue its "
                    f"generation prompt ({full[len(prompt) - 20 : len(prompt) + 20]!r}) → use "
                    "a model whose chat template has add_generation_prompt"
                )
            continuations.append(full[len(prompt) :].rstrip())
        lead: list[int] = []
    else:
        shown = "".join(f"{fill(t)} {words[c][0]}\n\n" for t, c in demonstrations)
        prompt = (f"{top}\n\n" if top else "") + shown + fill(_SLOT)
        space = "" if prompt[-1:].isspace() else " "
        continuations = [f"{space}{w}\n" for w in flat]
        lead = special_frame(tokenizer)[0]
    head, tail = prompt.split(_SLOT)
    ids = [_ids(tokenizer, c) for c in continuations]
    return PromptPlan(
        lead, _ids(tokenizer, head), _ids(tokenizer, tail), [], ids, owner, (head, tail)
    )


def encode_texts(
    plan: PromptPlan, tokenizer: Any, texts: list[str], max_length: int, where: str
) -> list[np.ndarray]:
    """Prompt ids for every text; the text (never the template) is cut to fit ``max_length``."""
    budget = max_length - plan.fixed
    if budget < 1:
        raise ConfigError(
            f"data.max_length: {max_length}: the prompt without the text already takes "
            f"{plan.fixed} tokens ({where}) → raise data.max_length or shorten the prompt"
        )
    if not texts:
        return []
    enc = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=budget)
    mask, unk = tokenizer.mask_token_id, tokenizer.unk_token_id
    out = []
    for ids in enc["input_ids"]:
        if mask is not None:  # a literal mask token in the text would make a second mask
            ids = [unk if i == mask else i for i in ids]
        out.append(np.asarray(plan.lead + plan.before + ids + plan.after + plan.trail, np.int32))
    return out
