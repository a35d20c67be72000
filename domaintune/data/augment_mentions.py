"""Mention replacement (Dai & Adel, 2020): swap entity mentions for same-type mentions of train.

A replacement mention brings its own tokens, tagged ``B-X I-X ...``; the rest of the sentence is
unchanged, so the tags stay aligned. Replacement mentions come from the original training
split (never validation or test) and, with ``mention_files``, from the ``<name> is_a <type>``
facts of knowledge-graph files: a domain dictionary (a disease list, a drug ontology) brings
names the few labelled sentences never show.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from domaintune.config.augment import MentionReplacementConfig
from domaintune.data.augment_text import entity_spans, is_cjk
from domaintune.data.knowledge_graph import read_graph
from domaintune.data.readers import Example, resolve_path
from domaintune.errors import DataError

if TYPE_CHECKING:
    from domaintune.data.augment import AugmentContext


def mention_pools(examples: list[Example]) -> dict[str, list[tuple[str, ...]]]:
    """Distinct mentions (token tuples) of each entity type, in first-seen order."""
    pools: dict[str, dict[tuple[str, ...], None]] = {}
    for example in examples:
        for start, end, kind in entity_spans(example["tags"]):
            pools.setdefault(kind, {})[tuple(example["tokens"][start:end])] = None
    return {kind: list(mentions) for kind, mentions in pools.items()}


# Relations that state a name's entity type, compared lower-cased with spaces and hyphens as "_".
TYPE_RELATIONS = {"is_a", "isa", "instance_of", "type"}
_WORD_TOKENS = re.compile(r"\w+|[^\w\s]")


def name_tokens(name: str, char_tokens: bool) -> tuple[str, ...]:
    """A dictionary name as data tokens, split as CoNLL files split words.

    Word and punctuation tokens (``Duchenne's`` → ``Duchenne ' s``); in character-token data
    (one CJK character a token) each CJK character is a token.
    """
    out: list[str] = []
    for part in _WORD_TOKENS.findall(name):
        out += list(part) if char_tokens and is_cjk(part) else [part]
    return tuple(out)


def file_mentions(
    files: list[str], kinds: list[str], char_tokens: bool, index: int
) -> tuple[dict[str, list[tuple[str, ...]]], dict[str, Any]]:
    """Mentions per entity type from the ``<name> is_a <type>`` facts of knowledge-graph files.

    Names and aliases of a fact whose tail is one of ``kinds`` (case-insensitively) count;
    other facts are skipped (their number is in the stats).

    Raises:
        DataError: A file with no fact naming one of the data's entity types.

    """
    by_lower = {kind.lower(): kind for kind in kinds}
    pools: dict[str, dict[tuple[str, ...], None]] = {}
    skipped = 0
    for spec in files:
        path = resolve_path(spec)
        if not path.is_file():
            raise DataError(
                f"{spec}: data.augment.{index}.mention_files: no such file → check the path "
                "(relative to the current folder) or use builtin:ncbi-disease/knowledge.tsv"
            )
        graph = read_graph(path)
        found = 0
        for head, facts in graph.facts.items():
            for relation, tail in facts:
                kind = by_lower.get(tail.lower())
                if re.sub(r"[\s\-]+", "_", relation.lower()) not in TYPE_RELATIONS or not kind:
                    skipped += 1
                    continue
                for name in [head, *graph.aliases.get(head, [])]:
                    if tokens := name_tokens(name, char_tokens):
                        pools.setdefault(kind, {})[tokens] = None
                        found += 1
        if not found:
            raise DataError(
                f"{spec}: data.augment.{index}.mention_files: no '<name> is_a <type>' fact with "
                f"a type of the data ({', '.join(kinds) or 'none'}) → write rows like "
                f"'<name><TAB>is_a<TAB>{kinds[0] if kinds else 'Disease'}'"
            )
    return {k: list(v) for k, v in pools.items()}, {"facts_skipped": skipped}


def augment(
    examples: list[Example], cfg: MentionReplacementConfig, ctx: AugmentContext
) -> tuple[list[tuple[int, Example]], dict[str, Any]]:
    """``cfg.copies`` copies of each sentence with entities, ``rate`` of its mentions replaced."""
    pools = mention_pools(ctx.train)
    info: dict[str, Any] = {}
    if cfg.mention_files:
        extra, skipped = file_mentions(cfg.mention_files, list(pools), ctx.char_tokens, ctx.index)
        for kind, mentions in extra.items():
            pools[kind] = list(dict.fromkeys([*pools[kind], *mentions]))
        info["mentions_from_files"] = {kind: len(m) for kind, m in sorted(extra.items())}
        info.update(skipped)
    positions = {kind: {m: n for n, m in enumerate(pool)} for kind, pool in pools.items()}
    out: list[tuple[int, Example]] = []
    for i, example in enumerate(examples):
        spans = entity_spans(example["tags"])
        if not spans:
            continue
        for copy in range(cfg.copies):
            rng = ctx.rng(i, copy)
            count = max(1, round(cfg.rate * len(spans)))
            chosen = set(rng.sample(range(len(spans)), min(count, len(spans))))
            tokens: list[str] = []
            tags: list[str] = []
            previous = 0
            changed = False
            for n, (start, end, kind) in enumerate(spans):
                tokens += example["tokens"][previous:start]
                tags += example["tags"][previous:start]
                mention = tuple(example["tokens"][start:end])
                pool = pools.get(kind, [])
                own = positions[kind].get(mention)
                size = len(pool) - (own is not None)
                if n in chosen and size > 0:
                    # The same draw as rng.choice(pool without this mention), without the copy.
                    pick = rng.randrange(size)
                    mention = pool[pick + (own is not None and pick >= own)]
                    changed = True
                tokens += mention
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
                previous = end
            if changed:
                tokens += example["tokens"][previous:]
                tags += example["tags"][previous:]
                out.append((i, {**example, "tokens": tokens, "tags": tags}))
    info["mentions"] = {kind: len(m) for kind, m in sorted(pools.items())}
    return out, info
