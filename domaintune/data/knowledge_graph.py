"""A knowledge graph from a triples file, and entity linking by longest dictionary match.

Linking runs an Aho-Corasick automaton (``pyahocorasick``) over a *matching form* of the text:
Latin letters lower-cased (except acronyms, below), whitespace runs collapsed to one space, and
spaces next to punctuation dropped, so ``"coli ( APC )"`` (CoNLL tokens joined) and
``"coli (APC)"`` (raw text) are one name. Every match is kept only where it starts and ends on a
word boundary for Latin script (``cancer`` is not found in ``anticancerous``); Chinese,
Japanese and Korean characters need no boundary. Of the matches left, the leftmost-longest
non-overlapping ones win. pyahocorasick's own ``iter_long`` picks the longest match before the
boundary check, which could drop a shorter valid one, so all matches are filtered here.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domaintune.data.clean import clean_text
from domaintune.errors import DataError

COLUMNS = ("head", "relation", "tail", "aliases")
ALIAS_SEPARATOR = "|"
_CJK = re.compile(
    r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)
_ACRONYM = re.compile(r"[A-Z0-9][A-Z0-9\-]*")


@dataclass
class Graph:
    """Entities (by head name, in file order) with their facts and their other names."""

    facts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # head -> (rel, tail)
    aliases: dict[str, list[str]] = field(default_factory=dict)  # head -> other names
    triples: int = 0


def read_graph(path: Path, fmt: str = "auto") -> Graph:
    """Read ``head, relation, tail[, aliases]`` rows from a TSV, CSV or JSONL file.

    Raises:
        DataError: A malformed row, naming the file and line and the fix.

    """
    if fmt == "auto":
        fmt = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(
            path.suffix.lower(), ""
        )
        if not fmt:
            raise DataError(
                f"{path}: data.knowledge.file: cannot tell the format from {path.suffix!r} → "
                "use .tsv, .csv or .jsonl, or set data.knowledge.format"
            )
    graph = Graph()
    rows = _json_rows(path) if fmt == "jsonl" else _table_rows(path, fmt)
    for lineno, head, relation, tail, aliases in rows:
        head, relation, tail = clean_text(head), clean_text(relation), clean_text(tail)
        if not (head and relation and tail):
            raise DataError(
                f"{path}:{lineno}: empty head, relation or tail → give all three on every row"
            )
        graph.facts.setdefault(head, []).append((relation, tail))
        names = graph.aliases.setdefault(head, [])
        names += [a for a in (clean_text(x) for x in aliases) if a and a not in names]
        graph.triples += 1
    if not graph.triples:
        raise DataError(f"{path}: no triples in the knowledge file → add head, relation, tail rows")
    return graph


Row = tuple[int, str, str, str, list[str]]  # line, head, relation, tail, aliases


def _table_rows(path: Path, fmt: str) -> list[Row]:
    delimiter = "\t" if fmt == "tsv" else ","
    out: list[Row] = []
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
        if not out and [c.lower() for c in cells] == list(COLUMNS[: len(cells)]):
            continue  # the optional header row
        if len(cells) not in (3, 4):
            raise DataError(
                f"{path}:{lineno}: {len(cells)} columns ({line[:60]!r}) → write head, relation, "
                f"tail and optional aliases separated by {'tabs' if fmt == 'tsv' else 'commas'}"
            )
        aliases = cells[3].split(ALIAS_SEPARATOR) if len(cells) == 4 else []
        out.append((lineno, cells[0], cells[1], cells[2], aliases))
    return out


def _json_rows(path: Path) -> list[Row]:
    out: list[Row] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{lineno}: invalid JSON ({exc.msg}) → write one object per line"
            ) from None
        parts = [row.get(k) if isinstance(row, dict) else None for k in COLUMNS[:3]]
        head, relation, tail = (p if isinstance(p, str) else "" for p in parts)
        if not all(isinstance(p, str) for p in parts):
            raise DataError(
                f"{path}:{lineno}: expected an object with string head, relation and tail → "
                'write {"head": ..., "relation": ..., "tail": ...}'
            )
        aliases = row.get("aliases") or []
        if isinstance(aliases, str):
            aliases = aliases.split(ALIAS_SEPARATOR)
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise DataError(
                f"{path}:{lineno}: aliases must be a list of strings or one '|'-separated string"
            )
        out.append((lineno, head, relation, tail, aliases))
    return out


def is_cjk(char: str) -> bool:
    """Chinese, Japanese or Korean: no word boundary needed around it."""
    return bool(_CJK.match(char))


def _word_char(char: str) -> bool:
    return char.isalnum() and not is_cjk(char)


def _lower(char: str) -> str:
    low = char.lower()
    return low if len(low) == 1 else char  # keep one character per character (positions)


def matching_form(text: str, lower: bool = True) -> tuple[str, list[int]]:
    """The text as names are matched, and each character's position in ``text``."""
    chars: list[str] = []
    where: list[int] = []
    pending = False  # a space waiting to see whether punctuation follows
    for i, char in enumerate(text):
        if char.isspace():
            pending = bool(chars)
            continue
        if pending and _word_char(chars[-1]) and (char.isalnum()):
            chars.append(" ")
            where.append(i - 1)
        pending = False
        chars.append(_lower(char) if lower else char)
        where.append(i)
    return "".join(chars), where


class Linker:
    """Finds the leftmost-longest, boundary-respecting mentions of a graph's entity names."""

    def __init__(self, graph: Graph, min_chars: int = 2, case_sensitive_acronyms: bool = True):
        """Index every head and alias of ``graph`` (names under ``min_chars`` are skipped)."""
        import ahocorasick  # pyahocorasick: a maintained C automaton, CJK-safe on str

        self.automaton = ahocorasick.Automaton()
        keys: dict[str, list[tuple[str, str | None]]] = {}
        for head, aliases in graph.aliases.items():
            for name in (head, *aliases):
                exact, _ = matching_form(name, lower=False)
                key, _ = matching_form(name)
                if len(key) < min_chars:
                    continue
                acronym = case_sensitive_acronyms and bool(_ACRONYM.fullmatch(exact))
                keys.setdefault(key, []).append((head, exact if acronym else None))
        for key, owners in keys.items():
            self.automaton.add_word(key, (len(key), owners))
        self.size = len(keys)
        if keys:
            self.automaton.make_automaton()

    def link(self, text: str) -> list[tuple[int, int, str]]:
        """``(start, end, head)`` of each mention in ``text`` (character offsets), in order."""
        if not self.size or not text:
            return []
        low, where = matching_form(text)
        exact = None
        found = []
        for end, (length, owners) in self.automaton.iter(low):
            start = end - length + 1
            if not _boundary(low, start, end):
                continue
            for head, case in owners:
                if case is not None:
                    exact = exact if exact is not None else matching_form(text, lower=False)[0]
                    if exact[start : end + 1] != case:
                        continue
                found.append((start, -length, head))
                break
        found.sort()
        out: list[tuple[int, int, str]] = []
        last = -1
        for start, neg, head in found:
            if start > last:
                end = start - neg - 1
                out.append((where[start], where[end] + 1, head))
                last = end
        return out


def _boundary(text: str, start: int, end: int) -> bool:
    """Latin matches start and end at word boundaries; CJK characters need none."""
    if start > 0 and _word_char(text[start]) and _word_char(text[start - 1]):
        return False
    return not (end + 1 < len(text) and _word_char(text[end]) and _word_char(text[end + 1]))


def verbalise(head: str, relation: str, tail: str) -> str:
    """One fact as text: ``"breast cancer is a Disease ."`` (underscores become spaces)."""
    return f"{head} {relation.replace('_', ' ')} {tail} ."


def graph_summary(graph: Graph) -> dict[str, Any]:
    """Counts for results.json: entities, names, triples and relations."""
    relations = sorted({r for facts in graph.facts.values() for r, _ in facts})
    return {
        "entities": len(graph.facts),
        "aliases": sum(len(a) for a in graph.aliases.values()),
        "triples": graph.triples,
        "relations": relations[:20],
    }
