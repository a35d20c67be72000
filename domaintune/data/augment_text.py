"""Words, entity spans and language detection shared by the augmentations.

An example becomes a list of :class:`Unit`: editable words, and (token classification) entity
spans that no augmentation edits. Turning units back into an example gives every new token the
tag ``O`` and copies entity spans with their tags, so tokens and tags stay aligned by
construction. Hand-written: the augmentation libraries (nlpaug, TextAttack) work on plain
strings and know nothing of tag sequences.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from domaintune.data.readers import Example

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{CJK}]")
_NOT_SPACE = re.compile(r"\S")
# A CJK character, or a run of anything else that is not white space.
_PIECES = re.compile(f"[{CJK}]|[^\\s{CJK}]+")


@dataclass
class Unit:
    """A word that may change, or an entity span (``tags`` set) that must not."""

    text: str
    tokens: list[str] | None = None
    tags: list[str] | None = None

    @property
    def fixed(self) -> bool:
        """Whether this unit is an entity span."""
        return self.tags is not None


def is_cjk(text: str) -> bool:
    """Whether every character of ``text`` is a CJK ideograph (and there is one at least)."""
    return bool(text) and all(_CJK_CHAR.fullmatch(c) for c in text)


def detect_language(texts: Iterable[str]) -> str:
    """``zh`` when CJK ideographs are 30% of the non-space characters at least, else ``en``."""
    cjk = total = 0
    for text in texts:
        cjk += len(_CJK_CHAR.findall(text))
        total += len(_NOT_SPACE.findall(text))
    return "zh" if total and cjk / total >= 0.3 else "en"


def uses_char_tokens(examples: Iterable[Example]) -> bool:
    """Whether token examples hold one CJK character a token (Chinese NER data sets do)."""
    single = multi = 0
    for example in examples:
        for token in example.get("tokens", []):
            if _CJK_CHAR.search(token):
                single, multi = single + (len(token) == 1), multi + (len(token) > 1)
    return single > 0 and single >= 9 * multi


def words(text: str, language: str) -> list[str]:
    """Words of a text: white-space separated (en) or jieba words (zh)."""
    if language != "zh":
        return text.split()
    import jieba

    jieba.setLogLevel(60)  # no "Building prefix dict" chatter on stderr
    return [w for w in jieba.cut(text) if w.strip()]


def join_words(parts: list[str], language: str) -> str:
    """Join words into a text: with spaces (en); without, except between two non-CJK words (zh)."""
    if language != "zh":
        return " ".join(parts)
    out = ""
    for word in parts:
        if out and not _CJK_CHAR.fullmatch(out[-1]) and not _CJK_CHAR.fullmatch(word[0]):
            out += " "
        out += word
    return out


def pieces(text: str) -> list[str]:
    """CJK characters and white-space separated runs of everything else (contextual units)."""
    return _PIECES.findall(text)


def split_tokens(text: str, char_tokens: bool) -> list[str]:
    """A new word's tokens: its characters (character-token data) or its space-separated parts."""
    return [c for c in text if not c.isspace()] if char_tokens else text.split()


def entity_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` of each IOB2 entity (end exclusive)."""
    spans: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-") or (
            tag.startswith("I-") and (not spans or spans[-1][1] != i or spans[-1][2] != tag[2:])
        ):
            spans.append((i, i + 1, tag[2:]))
        elif tag.startswith("I-"):
            start, _, kind = spans[-1]
            spans[-1] = (start, i + 1, kind)
    return spans


def to_units(example: Example, language: str, char_tokens: bool) -> list[Unit]:
    """An example's units: words of its text, or its O words and entity spans."""
    if "tokens" not in example:
        return [Unit(w) for w in words(example["text"], language)]
    tokens, tags = example["tokens"], example["tags"]
    units: list[Unit] = []
    run: list[str] = []  # consecutive O characters of character-token data, segmented together

    def flush() -> None:
        if run:
            units.extend(Unit(w) for w in words("".join(run), "zh"))
            run.clear()

    spans = {start: (end, kind) for start, end, kind in entity_spans(tags)}
    i = 0
    while i < len(tokens):
        if i in spans:
            flush()
            end = spans[i][0]
            units.append(Unit(" ".join(tokens[i:end]), tokens[i:end], tags[i:end]))
            i = end
            continue
        if char_tokens and is_cjk(tokens[i]):
            run.append(tokens[i])
        else:
            flush()
            units.append(Unit(tokens[i]))
        i += 1
    flush()
    return units


def from_units(units: list[Unit], example: Example, language: str, char_tokens: bool) -> Example:
    """A new example from units; the source's other fields (label, text pair) are kept."""
    if "tokens" not in example:
        return {**example, "text": join_words([u.text for u in units], language)}
    tokens: list[str] = []
    tags: list[str] = []
    for unit in units:
        if unit.tokens is not None and unit.tags is not None:
            tokens += unit.tokens
            tags += unit.tags
        else:
            new = split_tokens(unit.text, char_tokens)
            tokens += new
            tags += ["O"] * len(new)
    return {**example, "tokens": tokens, "tags": tags}


def alignment_problem(example: Example) -> str | None:
    """Why a token example is not a well-formed IOB2 sequence, or None when it is."""
    tokens, tags = example.get("tokens", []), example.get("tags", [])
    if len(tokens) != len(tags):
        return f"{len(tokens)} tokens but {len(tags)} tags"
    if not tokens:
        return "no tokens"
    for i, (token, tag) in enumerate(zip(tokens, tags, strict=True)):
        if not token:
            return f"token {i} is empty"
        if tag.startswith("I-") and (i == 0 or tags[i - 1][2:] != tag[2:]):
            return f"tag {i} {tag!r} does not continue an entity"
        if tag != "O" and not tag.startswith(("B-", "I-")):
            return f"tag {i} {tag!r} is not IOB2"
    return None
