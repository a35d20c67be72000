"""Facts as a second segment: tags stay aligned, facts carry no label, limits hold."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from domaintune.config import load_recipe
from domaintune.config.sections import (
    ClassificationTaskConfig,
    LanguageModelingTaskConfig,
    TokenClassificationTaskConfig,
)
from domaintune.errors import ConfigError
from domaintune.tasks.classification import ClassificationTask
from domaintune.tasks.knowledge_masking import choose_units, mention_units
from domaintune.tasks.language_modeling import LanguageModelingTask
from domaintune.tasks.token_classification import TokenClassificationTask
from domaintune.tasks.token_encode import IGNORE
from tests.conftest import WORDS

LABELS = ["O", "B-Disease", "I-Disease"]


@pytest.fixture(scope="module")
def tok(tiny_bert: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bert))


def _ner() -> TokenClassificationTask:
    return TokenClassificationTask(
        TokenClassificationTaskConfig(name="token_classification"), {"labels": LABELS}
    )


def _random_example(rng: random.Random) -> dict[str, object]:
    words = [rng.choice([*WORDS, "anticancerous", "x"]) for _ in range(rng.randint(1, 40))]
    tags, previous = [], "O"
    for _ in words:
        tag = rng.choice(["O", "B-Disease"] + (["I-Disease"] if previous != "O" else []))
        tags.append(tag)
        previous = tag
    example: dict[str, object] = {"tokens": words, "tags": tags}
    if rng.random() < 0.8:
        facts = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) + " ."
            for _ in range(rng.randint(1, 5))
        ]
        example["knowledge"] = {"facts": facts, "max_tokens": rng.randint(1, 40)}
    return example


def test_property_tags_stay_aligned_and_facts_are_ignored(tok: object) -> None:
    """Random sentences, tags, facts and limits: the words' own encoding never changes."""
    rng = random.Random(0)
    task = _ner()
    index = {label: i for i, label in enumerate(LABELS)}
    injected = 0
    for _ in range(60):
        examples = [_random_example(rng) for _ in range(rng.randint(1, 6))]
        plain = [{k: v for k, v in e.items() if k != "knowledge"} for e in examples]
        max_length = rng.randint(8, 96)
        with_facts = task.encode(copy.deepcopy(examples), tok, max_length).features
        without = task.encode(plain, tok, max_length).features
        again = task.encode(copy.deepcopy(examples), tok, max_length).features  # deterministic
        assert {k: [a.tolist() for a in v] for k, v in again.items()} == {
            k: [a.tolist() for a in v] for k, v in with_facts.items()
        }
        for i, example in enumerate(examples):
            ids, words, labels = (with_facts[k][i] for k in ("input_ids", "word_ids", "labels"))
            ids0, words0, labels0 = (without[k][i] for k in ("input_ids", "word_ids", "labels"))
            assert len(ids) <= max_length
            n = len(ids0) - 1  # the plain encoding without its final [SEP]
            assert ids[:n].tolist() == ids0[:n].tolist()  # the example's own tokens, unchanged
            assert words[: len(words0)].tolist() == words0.tolist()
            assert labels[: len(labels0)].tolist() == labels0.tolist()
            assert (words[len(words0) :] == -1).all() and (labels[len(labels0) :] == IGNORE).all()
            for pos, word in enumerate(words0):  # each word's tag on its first sub-word
                if word >= 0:
                    assert labels[pos] == index[example["tags"][word]]  # type: ignore[index]
            extra = len(ids) - len(ids0)
            if extra:
                injected += 1
                knowledge = example["knowledge"]
                assert extra - 1 <= knowledge["max_tokens"]  # type: ignore[index]
                types = with_facts["token_type_ids"][i]
                assert (types[: len(ids0)] == 0).all() and (types[len(ids0) :] == 1).all()
    assert injected > 20  # the property was exercised with facts, not only without


def test_raw_text_facts_have_no_offsets_and_spans_are_unchanged(tok: object) -> None:
    task = _ner()
    text = "the patient has cancer"
    facts = {"facts": ["cancer is a disease ."], "max_tokens": 64}
    a = task.encode([{"text": text, "knowledge": facts}], tok, 64)
    b = task.encode([{"text": text}], tok, 64)
    n = len(b.features["input_ids"][0])
    assert len(a.features["input_ids"][0]) > n
    offsets = a.features["offsets"][0].reshape(-1, 2)
    assert (offsets[n:] == 0).all()
    assert offsets[:n].tolist() == b.features["offsets"][0].reshape(-1, 2).tolist()
    outputs = [np.zeros(len(a.features["input_ids"][0]), dtype=np.int64)]
    outputs[0][a.features["word_ids"][0] == 3] = 1  # 'cancer' tagged B-Disease
    rows = task.format_predictions(outputs, [{"text": text}], a, tok)
    assert rows[0]["entities"] == [{"text": "cancer", "type": "Disease", "start": 16, "end": 22}]


def test_classification_appends_facts_and_never_cuts_the_text(tok: object) -> None:
    task = ClassificationTask(
        ClassificationTaskConfig(name="classification"), {"labels": ["negative", "positive"]}
    )
    long_text = " ".join(["patient"] * 70)
    facts = {"facts": ["cancer is a disease ."], "max_tokens": 64}
    examples = [
        {"text": "the patient has cancer", "label": "positive", "knowledge": facts},
        {"text": long_text, "label": "negative", "knowledge": facts},
        {"text": "a mild fever", "label": "negative"},
    ]
    enc = task.encode(examples, tok, 32).features
    plain = task.encode(
        [{k: v for k, v in e.items() if k != "knowledge"} for e in examples], tok, 32
    )
    short, cut, none = (ids.tolist() for ids in enc["input_ids"])
    assert short[: len(plain.features["input_ids"][0]) - 1] == (
        plain.features["input_ids"][0][:-1].tolist()
    )
    assert len(short) > len(plain.features["input_ids"][0])
    assert int(enc["token_type_ids"][0].max()) == 1
    assert cut == plain.features["input_ids"][1].tolist()  # full already: no facts, no cut
    assert none == plain.features["input_ids"][2].tolist()
    assert [int(x[0]) for x in enc["labels"]] == [1, 0, 0]


def test_knowledge_masking_masks_mentions_first_and_whole(tok: object) -> None:
    task = LanguageModelingTask(
        LanguageModelingTaskConfig(
            name="language_modeling", objective="mlm", knowledge_masking=True, mask_probability=0.2
        )
    )
    task.bind("bert", tok)
    text = "the patient has diabetes syndrome and a mild fever of the tumor"
    start = text.index("diabetes")
    docs = [{"text": text, "mentions": [[start, start + len("diabetes syndrome")]]}]
    encoded = task.encode(docs, tok, 64)
    entity = encoded.features["entity"][0]
    assert entity.sum() == 2  # 'diabetes' and 'syndrome'
    starts = encoded.features["word_start"][0]
    first = int(np.flatnonzero(entity)[0])
    assert starts[first] == 1 and starts[first + 1] == 0
    for seed in range(20):
        torch.manual_seed(seed)
        batch = task.collate(encoded.features, tok.pad_token_id, training=True)  # type: ignore[attr-defined]
        masked = set(batch["target_positions"].tolist())
        assert {first, first + 1} <= masked  # budget 3 of 14: the mention always goes first
    again = task.collate(encoded.features, 0)["target_positions"]
    assert torch.equal(again, task.collate(encoded.features, 0)["target_positions"])


def test_choose_units_respects_the_budget() -> None:
    candidate = torch.ones(1, 10, dtype=torch.bool)
    unit = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5, 6, 7]])
    draws = torch.tensor([[0.9, 0.9, 0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]])
    entity = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0, 0, 0]])
    chosen = choose_units(candidate, unit, draws, entity, 0.4)  # budget 4
    assert chosen[0].tolist() == [True] * 4 + [False] * 6
    starts, flags = mention_units(np.ones(4, np.int8), [(0, 0), (0, 3), (3, 6), (7, 9)], [[0, 6]])
    assert starts.tolist() == [1, 1, 0, 1] and flags.tolist() == [0, 1, 1, 0]


def test_recipes_must_use_knowledge_consistently(tmp_path: Path) -> None:
    data = {"train": "t.txt", "knowledge": {"file": "kg.tsv"}}
    with pytest.raises(ConfigError, match="knowledge_masking: true"):
        load_recipe({"task": {"name": "language_modeling"}, "data": data})
    with pytest.raises(ConfigError, match=r"set data\.knowledge"):
        load_recipe(
            {
                "task": {"name": "language_modeling", "knowledge_masking": True},
                "data": {"train": "t"},
            }
        )
    with pytest.raises(ConfigError, match="max_facts_per_entity"):
        load_recipe(
            {
                "task": {"name": "classification"},
                "data": {"train": "t", "knowledge": {"file": "kg", "max_facts_per_entity": 0}},
            }
        )
    recipe = load_recipe(
        {"task": {"name": "language_modeling", "knowledge_masking": True}, "data": data}
    )
    assert recipe.data.knowledge is not None and recipe.data.knowledge.mode == "append"
