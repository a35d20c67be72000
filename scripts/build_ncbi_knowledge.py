"""Build the shipped knowledge graph ``builtin:ncbi-disease/knowledge.tsv`` from train only.

Every disease mention annotated in the ncbi-disease *training* split
(``domaintune/data/builtin/ncbi-disease/train.conll``, identical to
``shared/data/ncbi-disease/train.conll``) becomes one fact ``<mention> is_a disease``. Mentions
are the B-/I-Disease token spans joined by spaces; names that differ only in case or in spaces
next to punctuation (linking treats them as one, ``data/knowledge_graph.matching_form``) are
kept once, the first spelling seen. The dev and test splits are never read, so the graph holds a
test mention only where the same name is also annotated in train (reported by
``bench/knowledge.py`` as the leakage check, and asserted by
``tests/unit/data/test_knowledge_graph.py``).

Run: ``python scripts/build_ncbi_knowledge.py`` (rewrites the file) or ``--check`` (exit 1 when
the shipped file differs from a fresh build).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BUILTIN = ROOT / "domaintune" / "data" / "builtin" / "ncbi-disease"
TRAIN = BUILTIN / "train.conll"
TARGET = BUILTIN / "knowledge.tsv"
RELATION, TAIL = "is_a", "disease"


def mentions(path: Path) -> list[str]:
    """Every annotated mention of a CoNLL file (tokens joined by spaces), in file order."""
    out: list[str] = []
    current: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        cells = line.split("\t") if line.strip() else []
        tag = cells[-1] if cells else "O"
        if current and not tag.startswith("I-"):
            out.append(" ".join(current))
            current = []
        if tag.startswith("B-") or (tag.startswith("I-") and not current):
            current = [cells[0]]
        elif tag.startswith("I-"):
            current.append(cells[0])
    return out


def build(train: Path = TRAIN) -> str:
    """The TSV text of the graph built from ``train``."""
    from domaintune.data.knowledge_graph import matching_form

    names: dict[str, str] = {}
    for mention in mentions(train):
        names.setdefault(matching_form(mention)[0], mention)
    lines = [
        "# Disease mentions of the ncbi-disease TRAINING split only, one '<mention> is_a disease'",
        f"# fact each ({len(names)} names). Built by scripts/build_ncbi_knowledge.py from "
        "train.conll;",
        "# dev and test were not read. Source corpus: NCBI disease corpus (public domain,",
        "# Dogan, Leaman, Lu 2014; see CITATION.md).",
        "head\trelation\ttail",
    ]
    lines += [f"{names[key]}\t{RELATION}\t{TAIL}" for key in sorted(names)]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write (or check) the shipped graph."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    text = build()
    if args.check:
        same = TARGET.is_file() and TARGET.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{TARGET} differs from a fresh build")
        sys.exit(0 if same else 1)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET} ({text.count(chr(10)) - 5} facts)")


if __name__ == "__main__":
    main()
