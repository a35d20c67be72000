"""Text cleaning that is safe for Chinese: NFKC, control characters, whitespace, exact dedupe."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Normalise one text: NFKC, control characters to spaces, whitespace runs to one space.

    Invisible format characters (zero-width space, soft hyphen...) are dropped, except the
    zero-width joiner that emoji sequences need. A run of whitespace becomes exactly one space
    and nothing else is inserted or removed, so spacing between CJK characters is never created
    or lost (only collapsed).
    """
    text = unicodedata.normalize("NFKC", text)
    # Format characters (Cf) are invisible: a space in their place would split words and
    # put spaces between CJK characters.
    text = "".join(
        " "
        if unicodedata.category(ch) == "Cc"
        else ""
        if unicodedata.category(ch) == "Cf" and ch != "\u200d"
        else ch
        for ch in text
    )
    return _WHITESPACE.sub(" ", text).strip()


def clean_layout(text: str) -> str:
    r"""Normalise generation text but keep its layout: NFKC, control and invisible characters.

    Line breaks, tabs and runs of spaces are kept (lists, code and poems need them; the model
    learns to write them); other control characters become spaces, ``\r\n`` becomes ``\n``.
    """
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n")
    return "".join(
        ch
        if ch in "\n\t"
        else " "
        if unicodedata.category(ch) == "Cc"
        else ""
        if unicodedata.category(ch) == "Cf" and ch != "\u200d"
        else ch
        for ch in text
    )


def clean_token(token: str) -> str:
    """Normalise one pre-split token; keep the original if cleaning would empty it."""
    cleaned = clean_text(token).replace(" ", "")
    return cleaned or token


def dedupe(items: list[T], key: Callable[[T], Hashable]) -> tuple[list[T], int]:
    """Drop exact duplicates (by ``key``), keeping first occurrences.

    Returns:
        The kept items and how many were dropped.

    """
    seen: set[Hashable] = set()
    kept: list[T] = []
    for item in items:
        k = key(item)
        if k in seen:
            continue
        seen.add(k)
        kept.append(item)
    return kept, len(items) - len(kept)
