"""Decoder SFT encoding: chat-template rendering and loss masks taken by character span.

A conversation is rendered once with the chat template; each assistant turn's character span
(its content and the end-of-turn token, e.g. ``<|im_end|>`` in ChatML) is found by rendering
the conversation up to that turn with and without the turn; tokens whose text starts inside a
span are learned, everything else (system and user turns, role headers, the separators after
the end-of-turn token) is masked. Masks never come from ``input_ids == pad_id``: SmolLM2's pad
token is its end-of-turn token, which must be learned.

transformers can return assistant masks only for templates with ``{% generation %}`` markers,
which most shipped templates (SmolLM2's included) lack, hence the spans are found here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domaintune.data.encode import Encoded
from domaintune.data.instructions import Example, last_assistant
from domaintune.errors import DataError

# For tokenizers without a chat template: one "role: content" line per turn, EOS after the
# assistant's content (so generation stops there).
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
Span = tuple[int, int]


class ChatRenderer:
    """Render conversations with one chat template and find the assistant turns' spans."""

    def __init__(self, tokenizer: Any, template: str | None = None) -> None:
        """Use ``template``, else the tokenizer's own, else ``FALLBACK_TEMPLATE``."""
        self.tokenizer = tokenizer
        own = getattr(tokenizer, "chat_template", None)
        self.source = "recipe" if template else "tokenizer" if own else "fallback"
        self.template: str = template or own or FALLBACK_TEMPLATE

    def render(self, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
        """The conversation as text (with the assistant header after it when asked)."""
        text = self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.template,
            add_generation_prompt=generation_prompt,
            tokenize=False,
        )
        return str(text)

    def spans(self, messages: list[dict[str, str]], where: str) -> tuple[str, list[Span]]:
        """The rendered conversation and the character span of every assistant turn."""
        full = self.render(messages)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            after = self.render(messages[: i + 1])
            if not full.startswith(after):
                raise DataError(
                    f"{where}: the chat template renders turn {i} differently once later turns "
                    "follow, so its tokens cannot be located → set task.chat_template to a "
                    "template that renders each turn the same way"
                )
            start = self._content_start(messages, i, after, where)
            end = len(after.rstrip())  # the end-of-turn token is learned, the newline after not
            spans.append((start, max(start, end)))
        return full, spans

    def _content_start(self, messages: list[dict[str, str]], i: int, after: str, where: str) -> int:
        """Where turn ``i``'s content begins: after the generation prompt, or found in the text."""
        before = self.render(messages[:i], generation_prompt=True) if i else ""
        if i and after.startswith(before) and before != self.render(messages[:i]):
            return len(before)
        base = len(self.render(messages[:i])) if i else 0
        content = messages[i]["content"].strip()
        # the content ends the rendered turn: search from the right (a default system prompt
        # may contain the same words)
        found = after.rfind(content, base) if content else len(after.rstrip())
        if found < 0:
            raise DataError(
                f"{where}: the chat template changes assistant turn {i}'s text, so it cannot be "
                "located → set task.chat_template"
            )
        return found

    def prompt(self, example: Example) -> str:
        """The text a model continues: the turns before the last assistant turn, then its header."""
        last = last_assistant(example)
        turns = example["messages"][:last] if last is not None else example["messages"]
        return self.render(turns, generation_prompt=True)


def decoder_text(example: Example, renderer: ChatRenderer, where: str) -> tuple[str, list[Span]]:
    """The training text of an example and the character spans whose tokens are learned."""
    if "messages" in example:
        return renderer.spans(example["messages"], where)
    prompt, completion = example["prompt"], example.get("completion", "")
    return prompt + completion, [(len(prompt), len(prompt) + len(completion))]


def encode_decoder(
    examples: list[Example], tokenizer: Any, renderer: ChatRenderer, max_length: int
) -> Encoded:
    """Token ids and a 0/1 ``loss_mask`` (1 = learned) per example, cut to ``max_length``.

    Chat text already holds its special tokens (the template writes them); prompt/completion
    text gets the tokenizer's own (a BOS, if it adds one) and an EOS after the completion.
    """
    ids_out: list[np.ndarray] = [np.zeros(0, np.int32)] * len(examples)
    masks: list[np.ndarray] = [np.zeros(0, np.int8)] * len(examples)
    for chat in (True, False):
        chosen = [i for i, e in enumerate(examples) if ("messages" in e) == chat]
        if not chosen:
            continue
        rendered = [decoder_text(examples[i], renderer, f"example {i + 1}") for i in chosen]
        enc = tokenizer(
            [text for text, _ in rendered],
            add_special_tokens=not chat,
            return_offsets_mapping=True,
            return_attention_mask=False,
            verbose=False,
        )
        for row, i in enumerate(chosen):
            ids = np.asarray(enc["input_ids"][row], dtype=np.int64)
            learned = span_mask(
                np.asarray(enc["offset_mapping"][row]).reshape(-1, 2), rendered[row][1]
            )
            if not chat and "completion" in examples[i] and tokenizer.eos_token_id is not None:
                ids = np.append(ids, tokenizer.eos_token_id)
                learned = np.append(learned, 1)
            learned[:1] = 0  # an example's first token has no context to be predicted from
            ids_out[i] = ids[:max_length].astype(np.int32)
            masks[i] = learned[:max_length].astype(np.int8)
    return Encoded({"input_ids": ids_out, "loss_mask": masks})


def span_mask(offsets: np.ndarray, spans: list[Span]) -> np.ndarray:
    """1 for tokens whose text starts inside a span (zero-width tokens never: BOS, added EOS)."""
    start, end = offsets[:, 0], offsets[:, 1]  # (T,), (T,)
    learned = np.zeros(len(offsets), dtype=np.int8)
    for a, b in spans:
        learned |= ((start >= a) & (start < b) & (end > start)).astype(np.int8)
    return learned
