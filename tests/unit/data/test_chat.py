"""SFT loss masks by span on SmolLM2's ChatML template, multi-turn, fallback template, rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domaintune.config.sections import DataConfig
from domaintune.data.chat import ChatRenderer, encode_decoder
from domaintune.data.readers import read_split
from domaintune.errors import DataError
from tests.generation_models import SMOLLM2_TEMPLATE, learned_runs, make_chat_llama


@pytest.fixture(scope="module")
def chat_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    folder = make_chat_llama(tmp_path_factory.mktemp("models") / "chat-llama")
    return AutoTokenizer.from_pretrained(str(folder))


def _learned(tokenizer: Any, example: dict[str, Any]) -> tuple[list[int], list[int]]:
    enc = encode_decoder([example], tokenizer, ChatRenderer(tokenizer), 512)
    return enc.features["input_ids"][0].tolist(), enc.features["loss_mask"][0].tolist()


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_chatml_mask_is_exactly_the_assistant_tokens_and_im_end(chat_tokenizer: Any) -> None:
    tok = chat_tokenizer
    assert tok.chat_template == SMOLLM2_TEMPLATE
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.pad_token_id == tok.eos_token_id == im_end  # SmolLM2: pad = eos = <|im_end|>
    messages = [
        {"role": "user", "content": "the patient has fever"},
        {"role": "assistant", "content": "a mild fever"},
    ]
    ids, mask = _learned(tok, {"messages": messages})
    # Token by token, independently of the span search: the prompt with the generation header,
    # then the answer and <|im_end|> (learned), then the template's newline (not learned).
    prompt = _ids(
        tok, tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    )
    answer = _ids(tok, "a mild fever<|im_end|>")
    assert ids == prompt + answer + _ids(tok, "\n")
    assert mask == [0] * len(prompt) + [1] * len(answer) + [0]
    assert ids[len(prompt) + len(answer) - 1] == im_end  # the end-of-turn token is learned
    assert tok.decode(ids[: len(prompt)]).startswith("<|im_start|>system\nYou are a helpful")


def test_every_assistant_turn_is_learned_and_user_turns_are_not(chat_tokenizer: Any) -> None:
    tok = chat_tokenizer
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "the patient has fever"},
        {"role": "assistant", "content": "a mild fever"},
        {"role": "user", "content": "and cancer?"},
        {"role": "assistant", "content": "no sign of cancer"},
    ]
    ids, mask = _learned(tok, {"messages": messages})
    assert learned_runs(tok, ids, mask) == ["a mild fever<|im_end|>", "no sign of cancer<|im_end|>"]
    assert "be brief" not in tok.decode([t for t, m in zip(ids, mask, strict=True) if m])


def test_pad_equal_to_eos_does_not_mask_the_end_of_turn(chat_tokenizer: Any) -> None:
    tok = chat_tokenizer
    ids, mask = _learned(
        chat_tokenizer,
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    )
    ends = [i for i, t in enumerate(ids) if t == tok.pad_token_id]
    assert [mask[i] for i in ends] == [0, 0, 1]  # system and user turns' ends, the answer's


def test_prompt_completion_learns_the_completion_and_an_eos(chat_tokenizer: Any) -> None:
    tok = chat_tokenizer
    ids, mask = _learned(tok, {"prompt": "the patient =>", "completion": " fever"})
    prompt, completion = _ids(tok, "the patient =>"), _ids(tok, " fever")
    assert ids == prompt + completion + [tok.eos_token_id]
    assert mask == [0] * len(prompt) + [1] * (len(completion) + 1)


def test_tokenizer_without_template_uses_the_plain_fallback(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    renderer = ChatRenderer(tok)
    assert renderer.source == "fallback"
    example = {
        "messages": [
            {"role": "user", "content": "the patient"},
            {"role": "assistant", "content": "has cancer"},
        ]
    }
    enc = encode_decoder([example], tok, renderer, 64)
    ids, mask = enc.features["input_ids"][0].tolist(), enc.features["loss_mask"][0].tolist()
    learned = [t for t, m in zip(ids, mask, strict=True) if m]
    assert tok.convert_ids_to_tokens(learned) == ["has", "cancer", "</s>"]
    assert renderer.prompt(example).endswith("assistant: ")


def test_truncation_keeps_the_first_max_length_tokens(chat_tokenizer: Any) -> None:
    example = {"prompt": "the patient has a mild fever =>", "completion": " no"}
    enc = encode_decoder([example], chat_tokenizer, ChatRenderer(chat_tokenizer), 4)
    assert len(enc.features["input_ids"][0]) == 4
    assert enc.features["loss_mask"][0].tolist() == [0, 0, 0, 0]


ROWS = [
    {"instruction": "name it", "input": "the fever", "output": "fever", "system": "be brief"},
    {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
    {"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]},
    {"prompt": "p", "completion": "c"},
    {"src": "s", "tgt": "t"},
]


def test_rows_of_every_format_read_through_the_jsonl_reader(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    cfg = DataConfig(train=str(path), source_column="src", target_column="tgt")
    examples = read_split(str(path), cfg, "gen")
    assert [e["format"] for e in examples] == [
        "instruction",
        "chat",
        "chat",
        "prompt_completion",
        "seq2seq",
    ]
    assert examples[0]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "name it\n\nthe fever"},
        {"role": "assistant", "content": "fever"},
    ]
    assert examples[1]["messages"] == examples[2]["messages"]  # OpenAI and ShareGPT shapes
    assert examples[4] == {"prompt": "s", "completion": "t", "format": "seq2seq"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"text": "x"}, "no generation fields"),
        ({"messages": [{"role": "user", "content": "x"}]}, "no assistant turn"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
        ({"instruction": "x"}, "no value in 'output'"),
    ],
)
def test_bad_rows_are_one_line_errors_naming_the_line(
    tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        read_split(str(path), DataConfig(train=str(path)), "gen")
    assert f"{path}:1" in str(info.value) and "\n" not in str(info.value)
