"""Build the built-in SFT sample (builtin:ncbi-disease-sft/*.jsonl) from builtin ncbi-disease.

Each row asks for the disease mentions of one NCBI-disease sentence, in the instruction format
(instruction / input / output): the output lists the mentions in order, separated by "; ", or
says "none". A seeded sample keeps the files small.

Usage:  python scripts/make_sft_sample.py   (rewrites domaintune/data/builtin/ncbi-disease-sft/)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from domaintune.config.sections import DataConfig
from domaintune.data.readers import read_conll

ROOT = Path(__file__).resolve().parents[1] / "domaintune" / "data" / "builtin"
INSTRUCTION = "List the disease names in the sentence, separated by '; ', or answer 'none'."
SIZES = {"train": 600, "dev": 100, "test": 100}


def mentions(tokens: list[str], tags: list[str]) -> list[str]:
    """The IOB2 entity strings of a sentence, in order."""
    found: list[list[str]] = []
    for token, tag in zip(tokens, tags, strict=True):
        if tag.startswith("B-"):
            found.append([token])
        elif tag.startswith("I-") and found:
            found[-1].append(token)
    return [" ".join(words) for words in found]


def main() -> None:
    """Rewrite the three files."""
    out = ROOT / "ncbi-disease-sft"
    out.mkdir(exist_ok=True)
    for split, size in SIZES.items():
        path = ROOT / "ncbi-disease" / f"{split}.conll"
        sentences = read_conll(path, DataConfig(train=str(path)), "tokens", True)
        rows = random.Random(13).sample(sentences, size)
        lines = []
        for row in rows:
            found = mentions(row["tokens"], row["tags"])
            lines.append(
                {
                    "instruction": INSTRUCTION,
                    "input": " ".join(row["tokens"]),
                    "output": "; ".join(found) if found else "none",
                }
            )
        (out / f"{split}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
