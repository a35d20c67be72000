"""Triples files, entity linking, and the shipped ncbi-disease graph (built from train only)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from domaintune.config.knowledge import KnowledgeConfig
from domaintune.data.knowledge import Injector, facts_that_fit
from domaintune.data.knowledge_graph import Graph, Linker, matching_form, read_graph
from domaintune.data.readers import resolve_path
from domaintune.errors import DataError

ROOT = Path(__file__).resolve().parents[3]


def _linker(*names: str, **kwargs: object) -> Linker:
    graph = Graph()
    for name in names:
        graph.facts[name] = [("is_a", "disease")]
        graph.aliases[name] = []
    return Linker(graph, **kwargs)  # type: ignore[arg-type]


def _names(linker: Linker, text: str) -> list[str]:
    return [text[s:e] for s, e, _ in linker.link(text)]


def test_tsv_with_header_comments_and_aliases(tmp_path: Path) -> None:
    path = tmp_path / "kg.tsv"
    path.write_text(
        "# a comment\nhead\trelation\ttail\taliases\n"
        "aspirin\ttreats\theadache\tASA|acetylsalicylic acid\n"
        "aspirin\tis_a\tdrug\n\n",
        encoding="utf-8",
    )
    graph = read_graph(path)
    assert graph.triples == 2
    assert graph.facts["aspirin"] == [("treats", "headache"), ("is_a", "drug")]
    assert graph.aliases["aspirin"] == ["ASA", "acetylsalicylic acid"]


def test_csv_and_jsonl_read_the_same_graph(tmp_path: Path) -> None:
    csv_path = tmp_path / "kg.csv"
    csv_path.write_text('aspirin,treats,headache,"ASA"\n肺癌,是,疾病\n', encoding="utf-8")
    jsonl = tmp_path / "kg.jsonl"
    rows = [
        {"head": "aspirin", "relation": "treats", "tail": "headache", "aliases": ["ASA"]},
        {"head": "肺癌", "relation": "是", "tail": "疾病"},
    ]
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    assert read_graph(csv_path) == read_graph(jsonl)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("kg.tsv", "a\tb\tc\nonly\ttwo\n", "kg.tsv:2"),
        ("kg.tsv", "a\t\tc\n", "kg.tsv:1"),
        ("kg.jsonl", '{"head": "a", "relation": "b", "tail": "c"}\n{"head": "a"}\n', "kg.jsonl:2"),
        ("kg.jsonl", "{not json\n", "kg.jsonl:1"),
    ],
)
def test_a_malformed_row_names_the_file_and_line(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=f"{where}: .*→") as info:
        read_graph(path)
    assert "\n" not in str(info.value)


def test_unknown_extension_and_empty_file_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "kg.txt").write_text("a\tb\tc\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.knowledge\.format"):
        read_graph(tmp_path / "kg.txt")
    (tmp_path / "empty.tsv").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(DataError, match="no triples"):
        read_graph(tmp_path / "empty.tsv")


def test_latin_names_need_word_boundaries_and_ignore_case() -> None:
    linker = _linker("cancer", "breast cancer")
    assert _names(linker, "anticancerous drugs") == []
    assert _names(linker, "cancerous cells") == []
    assert _names(linker, "Breast Cancer, and cancer-prone mice") == ["Breast Cancer", "cancer"]


def test_longest_match_wins_and_a_failed_boundary_falls_back_to_a_shorter_name() -> None:
    linker = _linker("cancer", "cancer cell", "lung cancer")
    assert _names(linker, "a cancer cell line") == ["cancer cell"]
    assert _names(linker, "cancer cells") == ["cancer"]  # 'cancer cell' ends inside 'cells'
    assert _names(linker, "lung cancer cell") == ["lung cancer"]  # leftmost first


def test_cjk_names_need_no_boundaries() -> None:
    linker = _linker("乳腺癌", "癌", min_chars=1)
    assert _names(linker, "她患乳腺癌多年") == ["乳腺癌"]
    assert _names(linker, "肺癌") == ["癌"]


def test_acronyms_keep_their_case_and_short_names_are_skipped() -> None:
    linker = _linker("AT", "DMD", "x")
    assert _names(linker, "look at AT and dmd") == ["AT"]
    assert _names(_linker("AT", case_sensitive_acronyms=False), "look at it") == ["at"]
    assert linker.size == 2  # 'x' is shorter than min_chars


def test_spaces_next_to_punctuation_do_not_matter() -> None:
    linker = _linker("adenomatous polyposis coli ( APC )")
    text = "the adenomatous  polyposis coli (APC) gene"
    assert _names(linker, text) == ["adenomatous  polyposis coli (APC)"]
    assert matching_form("coli ( APC ) x")[0] == "coli(apc)x"


def test_facts_respect_relations_per_entity_cap_and_mention_order(tmp_path: Path) -> None:
    path = tmp_path / "kg.tsv"
    path.write_text(
        "fever\tis_a\tsymptom\nfever\tcaused_by\tinfection\nfever\tis_a\tsign\n"
        "tumor\tis_a\tgrowth\n",
        encoding="utf-8",
    )
    injector = Injector(KnowledgeConfig(file=str(path), max_facts_per_entity=1))
    examples = [{"text": "tumor then fever and fever"}]
    stats = injector.attach(examples, "text")
    assert examples[0]["knowledge"]["facts"] == ["tumor is a growth .", "fever is a symptom ."]
    assert stats == {"examples": 1, "linked_examples": 1, "mentions": 3, "facts": 2}
    only = Injector(KnowledgeConfig(file=str(path), relations=["caused_by"]))
    examples = [{"text": "tumor then fever"}]
    only.attach(examples, "text")
    assert examples[0]["knowledge"]["facts"] == ["fever caused by infection ."]
    lm = [{"text": "a fever"}]
    injector.attach(lm, "lm")
    assert lm[0]["mentions"] == [[2, 7]] and "knowledge" not in lm[0]


def test_facts_that_fit_keeps_whole_facts_within_both_limits(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    facts = ["cancer is a disease .", "fever is a sign ."]  # each a handful of tokens
    sizes = [len(tok(f, add_special_tokens=False)["input_ids"]) for f in facts]
    examples = [{"knowledge": {"facts": facts, "max_tokens": 64}}] * 3 + [{"text": "x"}]
    examples[1] = {"knowledge": {"facts": facts, "max_tokens": sizes[0]}}
    out = facts_that_fit(tok, examples, [5, 5, 64 - sizes[0], 5], 64, 1)  # #3: room sizes[0] - 1
    assert out == [" ".join(facts), facts[0], None, None]


def _builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "build_ncbi_knowledge", ROOT / "scripts" / "build_ncbi_knowledge.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_ncbi_graph_is_built_from_train_only() -> None:
    builder = _builder()
    shipped = resolve_path("builtin:ncbi-disease/knowledge.tsv")
    assert shipped.read_text(encoding="utf-8") == builder.build(), "rerun the build script"
    graph = read_graph(shipped)
    key = lambda name: matching_form(name)[0]  # noqa: E731
    train = {key(m) for m in builder.mentions(builder.TRAIN)}
    names = {key(h) for h in graph.facts}
    assert names == train  # every name is a train mention, and every train mention is there
    test = {key(m) for m in builder.mentions(builder.BUILTIN / "test.conll")}
    # Test mentions in the graph are exactly those also annotated in train: no test leakage.
    assert names & test == train & test
    assert test - train and not (test - train) & names
