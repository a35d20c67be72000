"""Knowledge injection: link entities, attach their verbalised facts, carry the graph in runs.

The data stage (``api.prepare_data``) and prediction (``deploy.predict.predict_outputs``) call
:meth:`Injector.attach` on every example after cleaning:

- classification and token classification examples get ``example["knowledge"] =
  {"facts": [...], "max_tokens": N}``: the facts of the entities linked in the example, in
  order of first mention, at most ``max_facts_per_entity`` each. The task's ``encode`` appends
  the facts that fit (:func:`facts_that_fit`) as a second segment; the example's own tokens and
  labels are untouched;
- language-modelling examples get ``example["mentions"] = [[start, end], ...]`` (character
  spans), which ``task.knowledge_masking`` masks first.

A finished run keeps a copy of the triples file in ``final/knowledge/`` and its SHA-256 in
``final/domaintune.json``, so ``domaintune predict``, ``load_run`` and exports link the same way.
"""

from __future__ import annotations

import hashlib
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from domaintune.config.knowledge import KnowledgeConfig
from domaintune.config.sections import DataConfig
from domaintune.data.knowledge_graph import Graph, Linker, graph_summary, read_graph, verbalise
from domaintune.data.pipeline import RawSplits
from domaintune.data.readers import Example, Kind, resolve_path
from domaintune.errors import DataError, RunError

RUN_KNOWLEDGE_DIR = "knowledge"  # final/knowledge/<file>: the run's copy of the triples file


class Injector:
    """A graph, its linker and the injection options of one recipe."""

    def __init__(self, cfg: KnowledgeConfig, path: Path | None = None) -> None:
        """Read and index ``cfg.file`` (or ``path``, a run folder's copy of it)."""
        self.cfg = cfg
        self.path = path or knowledge_path(cfg)
        self.graph: Graph = read_graph(self.path, cfg.format)
        self.linker = Linker(self.graph, cfg.min_chars, cfg.case_sensitive_acronyms)
        wanted = set(cfg.relations) if cfg.relations is not None else None
        self.facts: dict[str, list[str]] = {}
        for head, pairs in self.graph.facts.items():
            kept = [verbalise(head, r, t) for r, t in pairs if wanted is None or r in wanted]
            if kept:
                self.facts[head] = kept[: cfg.max_facts_per_entity]

    def example_text(self, example: Example) -> str:
        """The text entities are linked in (tokens joined by spaces, a pair after its text)."""
        if "tokens" in example:
            return " ".join(example["tokens"])
        return " ".join(t for t in (example.get("text"), example.get("text_pair")) if t)

    def attach(self, examples: list[Example], kind: Kind) -> dict[str, int]:
        """Add facts (tasks) or mention spans (language modelling) to examples in place.

        Returns:
            Counts: examples, examples with a linked entity, mentions, facts attached.

        """
        stats = {"examples": len(examples), "linked_examples": 0, "mentions": 0, "facts": 0}
        for example in examples:
            example.pop("knowledge", None)
            example.pop("mentions", None)
            if kind == "lm":
                found = self.linker.link(example.get("text", ""))
                example["mentions"] = [[s, e] for s, e, _ in found]
            else:
                found = self.linker.link(self.example_text(example))
                heads = list(dict.fromkeys(h for _, _, h in found))
                facts = [f for h in heads for f in self.facts.get(h, [])]
                if facts:
                    example["knowledge"] = {"facts": facts, "max_tokens": self.cfg.max_fact_tokens}
                stats["facts"] += len(facts)
            stats["linked_examples"] += bool(found)
            stats["mentions"] += len(found)
        return stats

    def summary(self) -> dict[str, Any]:
        """The graph's file, hash and size, for results.json."""
        return {
            "file": self.cfg.file,
            "sha256": file_sha256(self.path),
            **graph_summary(self.graph),
            "linkable_names": self.linker.size,
        }


def inject_knowledge(raw: RawSplits, data: DataConfig, kind: Kind) -> None:
    """Attach ``data.knowledge`` to every split (no-op without it); counts go to raw.stats."""
    if data.knowledge is None:
        return
    injector = injector_for(data.knowledge)
    splits = {name: injector.attach(examples, kind) for name, examples in raw.splits.items()}
    raw.stats["knowledge"] = {**injector.summary(), "splits": splits}


def knowledge_path(cfg: KnowledgeConfig) -> Path:
    """The triples file of ``cfg`` (``builtin:`` names resolved), which must exist."""
    path = resolve_path(cfg.file)
    if not path.is_file():
        raise DataError(
            f"{cfg.file}: data.knowledge.file: no such file → check the path (relative to the "
            "current folder) or use builtin:ncbi-disease/knowledge.tsv"
        )
    return path


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (cached by path, size and modification time)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=4)
def _cached_injector(cfg_json: str, path: str, size: int, mtime_ns: int) -> Injector:
    return Injector(KnowledgeConfig.model_validate_json(cfg_json), Path(path))


def injector_for(cfg: KnowledgeConfig, path: Path | None = None) -> Injector:
    """An :class:`Injector`, reused while the config and the file are unchanged."""
    path = path or knowledge_path(cfg)
    stat = path.stat()
    return _cached_injector(cfg.model_dump_json(), str(path), stat.st_size, stat.st_mtime_ns)


def knowledge_identity(cfg: KnowledgeConfig) -> dict[str, Any]:
    """What the tokenisation cache key needs: the options and the file's content hash."""
    return {"config": cfg.model_dump(mode="json"), "sha256": file_sha256(knowledge_path(cfg))}


def facts_that_fit(
    tokenizer: Any, examples: list[Example], used: list[int], max_length: int, extra: int
) -> list[str | None]:
    """Per example, the facts text its second segment gets (whole facts, in order), or None.

    Args:
        tokenizer: The task's tokenizer.
        examples: Examples, some with ``knowledge`` attached.
        used: Tokens each example takes without facts (special tokens included).
        max_length: ``data.max_length``.
        extra: Special tokens a second segment adds (``[SEP]`` for BERT).

    """
    wanted = [(i, e["knowledge"]) for i, e in enumerate(examples) if e.get("knowledge")]
    out: list[str | None] = [None] * len(examples)
    flat = [fact for _, k in wanted for fact in k["facts"]]
    if not flat:
        return out
    sizes = iter(
        len(ids) for ids in tokenizer(flat, add_special_tokens=False, verbose=False)["input_ids"]
    )
    for i, knowledge in wanted:
        room = min(int(knowledge["max_tokens"]), max_length - used[i] - extra)
        kept, total = [], 0
        for fact, size in [(f, next(sizes)) for f in knowledge["facts"]]:
            if total + size > room:
                break  # whole facts only, in order: the first that does not fit ends the list
            kept.append(fact)
            total += size
        out[i] = " ".join(kept) if kept else None
    return out


def save_knowledge(cfg: KnowledgeConfig, final: Path) -> dict[str, Any]:
    """Copy the triples file into ``final/knowledge/``; the entry for ``domaintune.json``."""
    source = knowledge_path(cfg)
    target = final / RUN_KNOWLEDGE_DIR / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return {
        "file": f"{RUN_KNOWLEDGE_DIR}/{source.name}",
        "sha256": file_sha256(target),
        "source": cfg.file,
    }


def open_saved_knowledge(saved: dict[str, Any], folder: Path) -> Injector | None:
    """The injector a run or export folder was trained with (None without knowledge).

    Raises:
        RunError: The folder's copy of the triples file is missing or was changed.

    """
    entry = saved.get("knowledge")
    if not entry:
        return None
    path = folder / entry["file"]
    if not path.is_file() or file_sha256(path) != entry["sha256"]:
        state = "missing" if not path.is_file() else "changed since training"
        raise RunError(
            f"{path}: the run's knowledge graph is {state} (sha256 {entry['sha256'][:12]}…) → "
            f"restore it from {entry.get('source')} or retrain"
        )
    cfg = KnowledgeConfig.model_validate(saved["data"]["knowledge"])
    return injector_for(cfg, path)


def copy_saved_knowledge(saved: dict[str, Any], source: Path, target: Path) -> None:
    """Copy a run's ``knowledge/`` folder into an export folder (nothing without knowledge)."""
    if saved.get("knowledge"):
        shutil.copytree(source / RUN_KNOWLEDGE_DIR, target / RUN_KNOWLEDGE_DIR, dirs_exist_ok=True)
