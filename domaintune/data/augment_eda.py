"""EDA (Wei & Zou, 2019): synonym replacement, random insertion, random swap, random deletion.

The operations follow the paper's reference implementation: ``n = max(1, int(rate * words))``
words change; synonym replacement replaces every occurrence of a chosen word; insertion puts a
synonym of a random word at a random place; deletion drops each word with probability ``rate``
and keeps one word at least. With entity tags, only words outside entity spans count, change
or move, and insertions go between units, so a span is never split.
Hand-written: nlpaug and TextAttack implement EDA on plain strings (and need NLTK's WordNet
download); we need the operations on tagged units.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from domaintune.config.augment import EDAConfig
from domaintune.data.augment_text import Unit, from_units, is_cjk, to_units
from domaintune.data.readers import Example
from domaintune.data.synonyms import Synonyms, load_synonyms

if TYPE_CHECKING:
    from domaintune.data.augment import AugmentContext

_MAX_TRIES = 10  # the reference implementation's attempts at finding a word with synonyms


def augment(
    examples: list[Example], cfg: EDAConfig, ctx: AugmentContext
) -> tuple[list[tuple[int, Example]], dict[str, Any]]:
    """``cfg.copies`` EDA copies of each example; copy ``c`` uses one operation in turn."""
    language = ctx.language if cfg.language == "auto" else cfg.language
    synonyms, info = load_synonyms(cfg.lexicon, cfg.synonym_files, language)
    info["language"] = language
    stop = _stop_words(language)
    out: list[tuple[int, Example]] = []
    for i, example in enumerate(examples):
        units = to_units(example, language, ctx.char_tokens)
        first = ctx.rng(i, -1).randrange(len(cfg.operations))  # balance operations over copies
        for copy in range(cfg.copies):
            rng = ctx.rng(i, copy)
            operation = cfg.operations[(first + copy) % len(cfg.operations)]
            edited = OPERATIONS[operation](units, cfg.rate, rng, synonyms, stop)
            if edited is not None:
                out.append((i, from_units(edited, example, language, ctx.char_tokens)))
    return out, info


def _stop_words(language: str) -> frozenset[str]:
    if language == "zh":
        return frozenset()  # Chinese: single characters (mostly function words) are skipped
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def _replaceable(unit: Unit, stop: frozenset[str]) -> bool:
    """A word synonym replacement may change: no stop word, a letter word (2+ CJK characters)."""
    if unit.fixed:
        return False
    if is_cjk(unit.text):
        return len(unit.text) >= 2
    return unit.text.isalpha() and unit.text.lower() not in stop


def _count(units: list[Unit], rate: float) -> int:
    return max(1, int(rate * sum(not u.fixed for u in units)))


def _match_case(word: str, like: str) -> str:
    return word[0].upper() + word[1:] if like[:1].isupper() and word[:1].islower() else word


def synonym_replacement(
    units: list[Unit], rate: float, rng: random.Random, synonyms: Synonyms, stop: frozenset[str]
) -> list[Unit] | None:
    """Replace every occurrence of ``n`` distinct words by one of their synonyms."""
    candidates = sorted({u.text for u in units if _replaceable(u, stop) and synonyms.get(u.text)})
    rng.shuffle(candidates)
    chosen = {word: rng.choice(synonyms.get(word)) for word in candidates[: _count(units, rate)]}
    if not chosen:
        return None
    return [
        Unit(_match_case(chosen[u.text], u.text)) if not u.fixed and u.text in chosen else u
        for u in units
    ]


def random_insertion(
    units: list[Unit], rate: float, rng: random.Random, synonyms: Synonyms, stop: frozenset[str]
) -> list[Unit] | None:
    """Insert a synonym of a random word at a random place, ``n`` times."""
    new = list(units)
    inserted = 0
    for _ in range(_count(units, rate)):
        words = [u.text for u in new if _replaceable(u, stop)]
        for _ in range(_MAX_TRIES if words else 0):
            found = synonyms.get(rng.choice(words))
            if found:
                new.insert(rng.randrange(len(new) + 1), Unit(rng.choice(found)))
                inserted += 1
                break
    return new if inserted else None


def random_swap(
    units: list[Unit], rate: float, rng: random.Random, synonyms: Synonyms, stop: frozenset[str]
) -> list[Unit] | None:
    """Swap two random words, ``n`` times (entity spans never move)."""
    free = [i for i, u in enumerate(units) if not u.fixed]
    if len(free) < 2:
        return None
    new = list(units)
    for _ in range(_count(units, rate)):
        a, b = rng.sample(free, 2)
        new[a], new[b] = new[b], new[a]
    return new


def random_deletion(
    units: list[Unit], rate: float, rng: random.Random, synonyms: Synonyms, stop: frozenset[str]
) -> list[Unit] | None:
    """Drop each word with probability ``rate``; one word (or an entity) stays at least."""
    free = [i for i, u in enumerate(units) if not u.fixed]
    if len(units) < 2 or not free:
        return None
    drop = {i for i in free if rng.random() < rate}
    if len(drop) == len(units):  # everything would go: keep one random word
        drop.discard(rng.choice(free))
    return [u for i, u in enumerate(units) if i not in drop] if drop else None


OPERATIONS = {
    "synonym": synonym_replacement,
    "insert": random_insertion,
    "swap": random_swap,
    "delete": random_deletion,
}
