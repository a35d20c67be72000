"""Contextual substitution and back-translation on tiny generated models and a fake translator;
one training run with augmentation from a recipe."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from domaintune.config import Recipe
from domaintune.config.augment import BackTranslationConfig, ContextualConfig
from domaintune.data import augment_contextual, augment_translate
from domaintune.data.augment import AugmentContext
from domaintune.data.augment_text import alignment_problem, entity_spans
from domaintune.errors import ConfigError
from tests.conftest import DISEASES, WORDS, recipe_dict
from tests.generation_models import make_tiny_bart

WORDS_EN = [w for w in WORDS if w.isascii() and w not in DISEASES]


def forward_fake(texts: list[str], seed: int) -> list[str]:
    """A fake translator into the 'pivot': words reversed, the seed appended."""
    return [" ".join(reversed(t.split())) + f" <{seed}>" for t in texts]


def backward_fake(texts: list[str]) -> list[str]:
    """Back from the 'pivot': the seed dropped, words in order again, one word added."""
    return [" ".join(reversed(t.rsplit(" ", 1)[0].split())) + " indeed" for t in texts]


def _ner(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens: list[str] = []
        tags: list[str] = []
        for _ in range(rng.randint(2, 16)):
            if rng.random() < 0.25:
                tokens += [rng.choice(DISEASES), "syndrome"][: rng.randint(1, 2)]
                tags += ["B-Disease", "I-Disease"][: len(tokens) - len(tags)]
            else:
                tokens.append(rng.choice(WORDS_EN))
                tags.append("O")
        out.append({"tokens": tokens, "tags": tags})
    return out


def _mentions(example: dict[str, Any]) -> list[tuple[str, ...]]:
    return [tuple(example["tokens"][s:e]) for s, e, _ in entity_spans(example["tags"])]


def _ctx(
    examples: list[dict[str, Any]], model: Path | None = None, seed: int = 0
) -> AugmentContext:
    from domaintune.config import ModelConfig

    kind = "tokens" if "tokens" in examples[0] else "text"
    model_cfg = ModelConfig(name=str(model)) if model else None
    return AugmentContext(kind, examples, "en", False, model_cfg, seed=seed)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_mlm(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with a (random but saved, so 'trained') MLM head."""
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    folder = tmp_path_factory.mktemp("models") / "tiny-mlm"
    torch.manual_seed(0)
    BertForMaskedLM.from_pretrained(str(tiny_bert)).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(str(folder))
    return folder


def test_contextual_without_mlm_head_uses_embeddings_and_changes_o_tokens_only(
    tiny_bert: Path,
) -> None:
    examples = _ner(60)
    before = copy.deepcopy(examples)
    cfg = ContextualConfig(name="contextual", rate=0.3, copies=2, batch_size=16)
    out, info = augment_contextual.augment(examples, cfg, _ctx(examples, tiny_bert))
    assert examples == before
    assert info["scorer"] == "embeddings" and info["has_mlm_head"] is False
    assert len(out) > 60
    for source, example in out:
        src = examples[source]
        assert alignment_problem(example) is None and example["tags"] == src["tags"]
        changed = [
            i
            for i, (a, b) in enumerate(zip(src["tokens"], example["tokens"], strict=True))
            if a != b
        ]
        assert changed and all(src["tags"][i] == "O" for i in changed)
    again, _ = augment_contextual.augment(examples, cfg, _ctx(examples, tiny_bert))
    assert again == out


def test_contextual_with_an_mlm_head_masks_and_refuses_a_missing_head(
    tiny_bert: Path, tiny_mlm: Path
) -> None:
    examples = [{"text": "the patient has good result and strong profit", "label": "a"}]
    cfg = ContextualConfig(name="contextual", model=str(tiny_mlm), rate=0.5, copies=3)
    out, info = augment_contextual.augment(examples, cfg, _ctx(examples))
    assert info["scorer"] == "mlm_head" and out
    for _, example in out:
        assert example["label"] == "a" and len(example["text"].split()) == 8
    forced = ContextualConfig(name="contextual", model=str(tiny_bert), scorer="mlm_head")
    with pytest.raises(ConfigError, match="no trained MLM head"):
        augment_contextual.augment(examples, forced, _ctx(examples))


def test_candidate_vocabulary_is_whole_words(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    _, words = augment_contextual.candidate_vocabulary(
        AutoTokenizer.from_pretrained(str(tiny_bert))
    )
    assert "patient" in words and "血" in words
    assert not [w for w in words if w.startswith(("#", "[")) or (len(w) == 1 and w.isascii())]


def test_back_translation_with_a_fake_translator_keeps_entities() -> None:
    spec = "tests.unit.data.test_augment_models:"
    examples = _ner(80)
    cfg = BackTranslationConfig(
        name="back_translation",
        forward=spec + "forward_fake",
        backward=spec + "backward_fake",
        rate=0.5,
        min_segment=2,
    )
    out, info = augment_translate.augment(examples, cfg, _ctx(examples))
    assert 10 < len(out) <= 80 and info["texts_translated"] >= len(out)
    for source, example in out:
        assert alignment_problem(example) is None
        assert _mentions(example) == _mentions(examples[source])
        assert "indeed" in example["tokens"] and "<" not in " ".join(example["tokens"])
    assert augment_translate.augment(examples, cfg, _ctx(examples))[0] == out
    texts = [{"text": "the result was good", "label": 1}]
    ((_, new),) = augment_translate.augment(
        texts, cfg.model_copy(update={"rate": 1.0}), _ctx(texts)
    )[0]
    assert new == {"text": "the result was good indeed", "label": 1}


def test_back_translation_refuses_bad_translators() -> None:
    examples = [{"text": "a b c", "label": 0}]
    for spec, match in [
        ("no_such_module_xyz:f", "cannot import"),
        ("not a spec", "neither a folder"),
    ]:
        cfg = BackTranslationConfig(name="back_translation", forward=spec, backward=spec)
        with pytest.raises(ConfigError, match=match):
            augment_translate.augment(examples, cfg, _ctx(examples))


def test_back_translation_with_seq2seq_folders_samples_reproducibly(tmp_path: Path) -> None:
    folder = str(make_tiny_bart(tmp_path / "mt"))
    examples = [{"text": " ".join(WORDS_EN[i : i + 5]), "label": i % 2} for i in range(12)]
    cfg = BackTranslationConfig(
        name="back_translation",
        forward=folder,
        backward=folder,
        copies=2,
        sampling=True,
        max_new_tokens=8,
        batch_size=5,
    )
    first, _ = augment_translate.augment(examples, cfg, _ctx(examples, seed=3))
    again, _ = augment_translate.augment(examples, cfg, _ctx(examples, seed=3))
    assert first and first == again
    assert {e["label"] for _, e in first} <= {0, 1}


def test_training_run_with_augmentation_from_a_recipe(
    tmp_path: Path, tiny_bert: Path, ner_data: dict[str, Path]
) -> None:
    from domaintune import api

    data = recipe_dict(tiny_bert, ner_data, task="token_classification", epochs=1)
    synonyms = tmp_path / "syn.txt"
    synonyms.write_text("patient, sufferer\nresult, outcome\n", encoding="utf-8")
    data["data"].update(  # type: ignore[attr-defined]
        train_subset={"size": 20, "seed": 0},
        augment=[
            {"name": "eda", "copies": 2, "lexicon": "none", "synonym_files": [str(synonyms)]},
            {"name": "mention_replacement"},
            {"name": "contextual", "rate": 0.2},
        ],
    )
    result = api.run(Recipe.model_validate(data), output_dir=tmp_path / "run")
    stats = json.loads((Path(result.run_dir) / "results.json").read_text())["data"]
    assert stats["train_subset"] == {"size": 20, "seed": 0, "from": 64}
    assert stats["augment"]["source_examples"] == 20
    assert stats["sizes"]["train"] == 20 + stats["augment"]["added"]
    assert [a["name"] for a in stats["augment"]["augmentations"]] == [
        "eda",
        "mention_replacement",
        "contextual",
    ]
    assert stats["sizes"]["validation"] == 24 and stats["sizes"]["test"] == 24
    report = (Path(result.run_dir) / "report.html").read_text()
    assert "train subset: 20 of 64" in report and "augmentation: " in report
