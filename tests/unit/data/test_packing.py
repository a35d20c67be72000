"""Packed SFT batches keep examples apart: same logits and loss as each example alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from domaintune.config.generation import GenerationTaskConfig
from domaintune.data.packing import collate_packed, collate_padded, pack_rows
from domaintune.tasks.generation import GenerationTask
from tests.generation_models import make_chat_llama

EXAMPLES = [
    {
        "messages": [
            {"role": "user", "content": "the patient has fever"},
            {"role": "assistant", "content": "a mild fever"},
        ]
    },
    {"prompt": "profit rose =>", "completion": " strong market"},
    {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "cancer?"},
            {"role": "assistant", "content": "no sign"},
            {"role": "user", "content": "and fever"},
            {"role": "assistant", "content": "mild"},
        ]
    },
]


@pytest.fixture(scope="module")
def chat_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_chat_llama(tmp_path_factory.mktemp("models") / "chat-llama")


def _task(folder: Path, packing: bool = True) -> tuple[GenerationTask, Any]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    task = GenerationTask(GenerationTaskConfig(name="generation", packing=packing, pack_length=512))
    task.bind("llama", tok)
    return task, tok


def test_first_fit_decreasing_fills_rows_up_to_the_capacity() -> None:
    rows = pack_rows([5, 3, 8, 2, 6], capacity=10)
    assert rows == [[2, 3], [4, 1], [0]]  # 8+2, 6+3, 5
    assert pack_rows([12, 3], capacity=10) == [[0], [1]]  # too long: a row of its own


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_packed_logits_and_loss_equal_each_example_alone(chat_llama: Path, attention: str) -> None:
    from transformers import AutoModelForCausalLM

    task, tok = _task(chat_llama)
    model = AutoModelForCausalLM.from_pretrained(str(chat_llama), attn_implementation=attention)
    module = task.wrap(model).eval()
    assert task.packing_ok
    encoded = task.encode(EXAMPLES, tok, 256)
    packed = task.collate(encoded.features, tok.pad_token_id, training=True)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed  # one row
    lengths = encoded.lengths
    with torch.no_grad():
        row = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits[0]  # (T, V)
        start = 0
        for i in sorted(range(3), key=lambda k: -lengths[k]):  # the packing order
            alone = model(
                input_ids=torch.from_numpy(encoded.features["input_ids"][i]).long()[None]
            ).logits[0]
            assert torch.allclose(row[start : start + lengths[i]], alone, atol=1e-5)
            start += lengths[i]
        padded = task.collate(encoded.features, tok.pad_token_id, training=False)
        loss_packed = task.loss(module(**_inputs(packed)).logits, packed)
        loss_padded = task.loss(module(**_inputs(padded)).logits, padded)
    assert (
        loss_packed[1]
        == loss_padded[1]
        == sum(int(m[1:].sum()) for m in encoded.features["loss_mask"])
    )
    assert torch.allclose(loss_packed[0], loss_padded[0], atol=1e-4)


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}


def test_targets_never_cross_from_one_example_into_the_next() -> None:
    # Every token of the second example is "learned": its first token must still not be a
    # target of the first example's last position.
    features = {
        "input_ids": [np.array([5, 6, 7], np.int32), np.array([8, 9], np.int32)],
        "loss_mask": [np.array([0, 0, 1], np.int8), np.array([1, 1], np.int8)],
    }
    packed = collate_packed(features, pad_token_id=0, capacity=8)
    assert packed["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert packed["target_positions"].tolist() == [1, 3]  # 6→7 and 8→9, never 7→8
    padded = collate_padded(features, pad_token_id=0)
    assert padded["labels"].tolist() == [7, 9]


def test_padding_at_a_row_end_is_a_sequence_of_its_own() -> None:
    features = {
        "input_ids": [np.array([5, 6, 7, 8], np.int32), np.array([8, 9], np.int32)],
        "loss_mask": [np.array([0, 1, 1, 1], np.int8), np.array([0, 1], np.int8)],
    }
    packed = collate_packed(features, pad_token_id=0, capacity=4)
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 0, 1]]
    assert packed["input_ids"].tolist() == [[5, 6, 7, 8], [8, 9, 0, 0]]


def test_a_model_that_mixes_packed_examples_is_trained_padded(
    chat_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    from domaintune.models import lm

    monkeypatch.setattr(lm, "keeps_packed_examples_apart", lambda model: False)
    task, tok = _task(chat_llama)
    with pytest.warns(UserWarning, match="padded instead"):
        task.wrap(AutoModelForCausalLM.from_pretrained(str(chat_llama)))
    batch = task.collate(task.encode(EXAMPLES, tok, 256).features, tok.pad_token_id, True)
    assert batch["input_ids"].shape[0] == 3 and "attention_mask" in batch
