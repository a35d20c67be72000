"""Word types for corpus statistics, and the seeded sample the statistics are computed on."""

from __future__ import annotations

import random
import re
from typing import TypeVar

T = TypeVar("T")
# Hand-written: no library splits "words" for type counts without a model (jieba does Chinese).
_LATIN_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def sample(items: list[T], max_items: int, seed: int = 0) -> list[T]:
    """Return all items, or a seeded sample of ``max_items`` of them in their original order."""
    if len(items) <= max_items:
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), max_items))
    return [items[i] for i in keep]


def sample_texts(texts: list[str], max_docs: int, seed: int = 0) -> list[str]:
    """Return at most ``max_docs`` non-empty texts: all of them, or a seeded sample in order."""
    return sample([t for t in texts if t.strip()], max_docs, seed)


def split_words(text: str) -> list[str]:
    """Lowercased word types of a text: jieba words for Chinese, a letter-run regex otherwise.

    Numbers and punctuation are not words. (The regex is hand-written because no library
    tokenises "words" for type statistics without a model; jieba does it for Chinese.)
    """
    if _CJK.search(text) is None:
        return _LATIN_WORD.findall(text.lower())
    import jieba

    jieba.setLogLevel(60)  # no "Building prefix dict" chatter on stderr
    return [w for w in (p.strip().lower() for p in jieba.cut(text)) if _has_letter(w)]


def _has_letter(word: str) -> bool:
    return any(ch.isalpha() for ch in word)
