"""Label maps for classification and IOB2 tag schemes for token classification."""

from __future__ import annotations

from collections import Counter
from typing import Any

from domaintune.errors import DataError


def split_multi_label(value: Any, separator: str | None) -> list[str]:
    """Turn a multi-label cell (a list, or a string with ``separator``) into label names."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if separator is None:
        return [str(value)]
    return [part.strip() for part in str(value).split(separator) if part.strip()]


def build_label_list(train_labels: list[str]) -> list[str]:
    """Sorted list of distinct label names found in the training split."""
    return sorted(set(train_labels))


def check_known_labels(labels: list[str], known: list[str], split: str, origin: str) -> None:
    """Fail with one line if a split uses a label that the training split never had."""
    known_set = set(known)
    for i, label in enumerate(labels):
        if label not in known_set:
            raise DataError(
                f"{origin}: example {i + 1} of the {split} split has label {label!r}, which the "
                f"training split does not have (labels: {', '.join(known)}) → fix the label or "
                "add training examples with it"
            )


# ----------------------------------------------------------------------------------------- IOB2
def to_iob2(tags: list[str], repair: bool, where: str) -> list[str]:
    """Convert IOBES/BMES/IOB1 tags to strict IOB2, repairing or rejecting violations.

    ``S-X``/``B-X`` begin an entity, ``E-X``/``M-X``/``I-X`` continue it. An ``I-X`` that does not
    continue an ``X`` entity becomes ``B-X`` when ``repair`` is set, else it is an error.
    """
    out: list[str] = []
    prev_type: str | None = None
    for i, tag in enumerate(tags):
        if tag == "O" or tag == "":
            out.append("O")
            prev_type = None
            continue
        if len(tag) < 3 or tag[1] not in "-_" or tag[0] not in "BIESM":
            raise DataError(
                f"{where}: token {i + 1}: tag {tag!r} is not O or B-/I-/E-/S-/M-TYPE → fix the tag"
            )
        prefix, etype = tag[0], tag[2:]
        if prefix in "BS":
            out.append(f"B-{etype}")
        elif prev_type == etype:
            out.append(f"I-{etype}")
        elif repair:
            out.append(f"B-{etype}")
        else:
            raise DataError(
                f"{where}: token {i + 1}: {tag!r} follows {tags[i - 1] if i else 'the start'!r}"
                " and cannot continue an entity → fix the tag or set "
                "task.repair_tags: true"
            )
        prev_type = None if prefix in "ES" else etype
    return out


def entity_types(tag_lists: list[list[str]]) -> list[str]:
    """Sorted entity types used in IOB2 tag lists."""
    types = {tag[2:] for tags in tag_lists for tag in tags if tag != "O"}
    return sorted(types)


def tag_list_for(types: list[str]) -> list[str]:
    """The full IOB2 label list: ``O`` then ``B-X``, ``I-X`` for each type."""
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def label_counts(labels: list[str]) -> dict[str, int]:
    """Count labels, most common first."""
    return dict(Counter(labels).most_common())
