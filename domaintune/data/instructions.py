"""Generation data rows → one of two example shapes, with the row's format told by its fields.

* ``{"messages": [{"role", "content"}, ...], "format": "chat" | "instruction"}`` for chat rows
  (OpenAI ``{role, content}`` or ShareGPT ``{from, value}`` messages, under ``messages`` or
  ``conversations``) and instruction rows (``instruction``, optional ``input``, ``output``,
  optional ``system``: the user turn is the instruction, then a blank line and the input).
* ``{"prompt", "completion", "format": "prompt_completion" | "seq2seq"}`` for ``prompt`` /
  ``completion`` rows and ``data.source_column`` / ``data.target_column`` rows.

Unlabelled rows (prediction inputs) may lack the output: the completion, the target, or a
final assistant turn.
"""

from __future__ import annotations

from typing import Any

from domaintune.config.sections import DataConfig
from domaintune.errors import DataError

Example = dict[str, Any]
ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant"}
CHAT_KEYS = ("messages", "conversations")


def row_format(row: dict[str, Any], cfg: DataConfig) -> str | None:
    """The format a row's fields say, or None when it has no generation fields."""
    if any(isinstance(row.get(k), list) for k in CHAT_KEYS):
        return "chat"
    if "instruction" in row:
        return "instruction"
    if "prompt" in row and isinstance(row["prompt"], list):
        return "chat"  # a conversational prompt/completion row (a list of messages)
    if "prompt" in row:
        return "prompt_completion"
    if cfg.source_column in row:
        return "seq2seq"
    return None


def generation_example(
    row: dict[str, Any], cfg: DataConfig, where: str, need_labels: bool
) -> Example:
    """Convert one data row to a generation example (one-line errors naming ``where``)."""
    fmt = row_format(row, cfg)
    if fmt is None:
        raise DataError(
            f"{where}: no generation fields (found {sorted(row)[:8]}) → give messages, "
            "instruction/input/output, prompt/completion, or set data.source_column and "
            "data.target_column"
        )
    if fmt == "chat":
        return _chat_example(row, where, need_labels)
    if fmt == "instruction":
        return _instruction_example(row, where, need_labels)
    source, target = ("prompt", "completion") if fmt == "prompt_completion" else _columns(cfg)
    example: Example = {"prompt": _text(row, source, where), "format": fmt}
    if row.get(target) not in (None, ""):
        example["completion"] = _text(row, target, where)
    elif need_labels:
        raise DataError(f"{where}: no value in {target!r} → add the output text")
    return example


def _columns(cfg: DataConfig) -> tuple[str, str]:
    return cfg.source_column, cfg.target_column


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} is {type(value).__name__}, not text → fix the row")
    return value


def _instruction_example(row: dict[str, Any], where: str, need_labels: bool) -> Example:
    instruction = _text(row, "instruction", where)
    extra = row.get("input") or ""
    if not isinstance(extra, str):
        raise DataError(f"{where}: field 'input' is {type(extra).__name__}, not text → fix it")
    messages = []
    if row.get("system"):
        messages.append({"role": "system", "content": _text(row, "system", where)})
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages.append({"role": "user", "content": user})
    if row.get("output") not in (None, ""):
        messages.append({"role": "assistant", "content": _text(row, "output", where)})
    elif need_labels:
        raise DataError(f"{where}: no value in 'output' → add the response text")
    return {"messages": messages, "format": "instruction"}


def _chat_example(row: dict[str, Any], where: str, need_labels: bool) -> Example:
    if "prompt" in row and isinstance(row["prompt"], list):
        completion = row.get("completion") or []
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        raw = [*row["prompt"], *completion]
    else:
        raw = next(row[k] for k in CHAT_KEYS if isinstance(row.get(k), list))
    messages = [_message(m, where, i) for i, m in enumerate(raw)]
    if not messages:
        raise DataError(f"{where}: the conversation is empty → add messages")
    if need_labels and not any(m["role"] == "assistant" for m in messages):
        raise DataError(
            f"{where}: no assistant turn to learn → add a message with role 'assistant' "
            "(or from 'gpt')"
        )
    return {"messages": messages, "format": "chat"}


def _message(message: Any, where: str, index: int) -> dict[str, str]:
    """One message in our shape; OpenAI text parts are joined."""
    if not isinstance(message, dict):
        raise DataError(f"{where}: message {index} is not an object → write {{role, content}}")
    if "from" in message:
        role, content, table = message.get("from"), message.get("value"), SHAREGPT_ROLES
    else:
        role, content, table = message.get("role"), message.get("content"), ROLES
    if role not in table:
        raise DataError(f"{where}: message {index}: role {role!r} → use one of {sorted(table)}")
    if isinstance(content, list):  # OpenAI content parts: keep the text parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise DataError(f"{where}: message {index}: content is not text → fix the row")
    return {"role": table[role], "content": content}


def last_assistant(example: Example) -> int | None:
    """Index of the conversation's last assistant message (None when it has none)."""
    roles = [m["role"] for m in example.get("messages", [])]
    return len(roles) - 1 - roles[::-1].index("assistant") if "assistant" in roles else None


def reference_text(example: Example) -> str | None:
    """The expected output: the completion or the last assistant turn (None if unlabelled)."""
    if "messages" in example:
        last = last_assistant(example)
        return example["messages"][last]["content"] if last is not None else None
    completion = example.get("completion")
    return str(completion) if completion is not None else None


def source_text(example: Example) -> str:
    """The input as plain text: the prompt, or the turns before the last assistant turn."""
    if "messages" not in example:
        return str(example["prompt"])
    last = last_assistant(example)
    turns = example["messages"][:last] if last is not None else example["messages"]
    return "\n".join(m["content"] for m in turns if m["role"] != "system")


def generation_text(example: Example) -> str:
    """All the text of an example (for corpus statistics and vocabulary expansion)."""
    if "messages" in example:
        return "\n".join(m["content"] for m in example["messages"])
    return f"{example.get('prompt', '')}\n{example.get('completion', '')}".strip()
