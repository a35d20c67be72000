"""Readers for CSV, JSONL, TXT, CoNLL and Hugging Face datasets into plain example dicts.

Text examples are ``{"text", "text_pair"?, "label"?}``; token examples are ``{"tokens", "tags"?}``;
generation examples (kind ``gen``) are conversations or prompt/completion pairs
(``data/instructions.py``).
Language-modelling data (kind ``lm``) is read without labels from any format (TAPT reads a
task's own training file).
Every reader reports problems as one line naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from domaintune.config.sections import DataConfig
from domaintune.data.instructions import generation_example
from domaintune.errors import DataError

Kind = Literal["text", "tokens", "lm", "gen"]
Example = dict[str, Any]

BUILTIN_PREFIX = "builtin:"


def resolve_path(spec: str) -> Path:
    """Turn a recipe path (or ``builtin:NAME/FILE``) into a filesystem path."""
    if spec.startswith(BUILTIN_PREFIX):
        rel = spec[len(BUILTIN_PREFIX) :].strip("/")
        root = resources.files("domaintune.data") / "builtin"
        path = Path(str(root / rel))
        if not path.exists():
            available = sorted(p.name for p in Path(str(root)).iterdir() if p.is_dir())
            raise DataError(
                f"{spec}: no such built-in data file → use one of builtin:{available[0]}/"
                "{train,dev,test}.conll"
                if available
                else f"{spec}: no built-in data is installed → reinstall domaintune"
            )
        return path
    return Path(spec).expanduser()


def detect_format(path: Path) -> str:
    """Pick a reader from the file extension."""
    suffix = path.suffix.lower()
    if path.is_dir():
        return "hf"
    mapping = {
        ".csv": "csv",
        ".tsv": "csv",
        ".jsonl": "jsonl",
        ".json": "jsonl",
        ".txt": "txt",
        ".conll": "conll",
        ".bio": "conll",
        ".iob": "conll",
        ".bmes": "conll",
    }
    if suffix not in mapping:
        raise DataError(
            f"{path}: cannot tell the format from the extension {suffix!r} → set data.format to "
            "csv, jsonl, txt, conll or hf"
        )
    return mapping[suffix]


def read_split(spec: str, cfg: DataConfig, kind: Kind, need_labels: bool = True) -> list[Example]:
    """Read one split file with the reader named by ``cfg.format`` (or its extension)."""
    path = resolve_path(spec)
    if not path.exists():
        raise DataError(
            f"{spec}: data file not found → check the path in the recipe (data.*) "
            "relative to the current folder"
        )
    fmt = cfg.format if cfg.format != "auto" else detect_format(path)
    from domaintune.data import READERS

    return READERS[fmt](path, cfg, kind, need_labels and kind != "lm")


def _text_example(row: dict[str, Any], cfg: DataConfig, where: str, need_labels: bool) -> Example:
    if cfg.text_column not in row:
        raise DataError(
            f"{where}: no column {cfg.text_column!r} (found {sorted(row)}) → set "
            "data.text_column to the text column's name"
        )
    text = row[cfg.text_column]
    if not isinstance(text, str):
        raise DataError(
            f"{where}: column {cfg.text_column!r} is {type(text).__name__}, not text → "
            "fix the row or set data.text_column"
        )
    example: Example = {"text": text}
    if cfg.text_pair_column is not None:
        example["text_pair"] = str(row.get(cfg.text_pair_column, ""))
    if need_labels:
        if cfg.label_column not in row or row[cfg.label_column] in (None, ""):
            raise DataError(
                f"{where}: no value in label column {cfg.label_column!r} → add the "
                "label or set data.label_column"
            )
        example["label"] = row[cfg.label_column]
    return example


def read_jsonl(path: Path, cfg: DataConfig, kind: Kind, need_labels: bool) -> list[Example]:
    """Read JSON Lines: one object per line (a ``.json`` file holding one list also works)."""
    text = path.read_text(encoding="utf-8-sig")
    rows: list[tuple[int, Any]]
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: invalid JSON at line {exc.lineno}: {exc.msg} → fix the file"
            ) from None
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{lineno}: invalid JSON ({exc.msg}) → write one JSON object per line"
                ) from None
    out = []
    for lineno, row in rows:
        where = f"{path}:{lineno}"
        if not isinstance(row, dict):
            raise DataError(
                f"{where}: expected a JSON object, got {type(row).__name__} → write "
                "one object per line"
            )
        out.append(row_example(row, cfg, kind, where, need_labels))
    return out


def row_example(
    row: dict[str, Any], cfg: DataConfig, kind: Kind, where: str, need_labels: bool
) -> Example:
    """One data row (a JSON object, CSV row or dataset row) as an example of ``kind``."""
    if kind == "tokens":
        return _token_example_from_row(row, cfg, where, need_labels)
    if kind == "gen":
        return generation_example(row, cfg, where, need_labels)
    return _text_example(row, cfg, where, need_labels)


def _token_example_from_row(
    row: dict[str, Any], cfg: DataConfig, where: str, need_labels: bool
) -> Example:
    tokens = row.get(cfg.tokens_column)
    if tokens is None and isinstance(row.get(cfg.text_column), str):
        return {"text": row[cfg.text_column]}
    if not isinstance(tokens, list):
        raise DataError(f"{where}: no list column {cfg.tokens_column!r} → set data.tokens_column")
    example: Example = {"tokens": [str(t) for t in tokens]}
    if need_labels:
        tags = row.get(cfg.tags_column)
        if not isinstance(tags, list) or len(tags) != len(tokens):
            raise DataError(
                f"{where}: column {cfg.tags_column!r} must be a list as long as the "
                "tokens → fix the row or set data.tags_column"
            )
        example["tags"] = [str(t) for t in tags]
    return example


def read_csv(path: Path, cfg: DataConfig, kind: Kind, need_labels: bool) -> list[Example]:
    """Read CSV (or TSV by extension) with a header row."""
    if kind == "tokens":
        raise DataError(
            f"{path}: CSV cannot hold token-level tags → use CoNLL or JSONL with tokens/tags lists"
        )
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        if reader.fieldnames is None:
            raise DataError(f"{path}: the file is empty → add a header row and data")
        return [
            row_example(row, cfg, kind, f"{path}:{lineno}", need_labels)
            for lineno, row in enumerate(reader, start=2)
        ]


def read_txt(path: Path, cfg: DataConfig, kind: Kind, need_labels: bool) -> list[Example]:
    """Read plain text, one example per non-empty line (no labels)."""
    if need_labels:
        raise DataError(
            f"{path}: a .txt file has no labels → use CSV/JSONL (text, label) or "
            "CoNLL for training and evaluation data"
        )
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [{"text": line} for line in lines if line.strip()]


def read_conll(path: Path, cfg: DataConfig, kind: Kind, need_labels: bool) -> list[Example]:
    """Read CoNLL: one ``token ... tag`` line per token, blank lines between sentences.

    ``-DOCSTART-`` lines are skipped. Columns are split on tabs, or on spaces when a line has
    no tab.
    """
    return list(iter_conll(path, cfg, need_labels))


def iter_conll(path: Path, cfg: DataConfig, need_labels: bool) -> Iterator[Example]:
    """Yield CoNLL sentences one at a time (see ``read_conll``), reading the file lazily."""
    tokens: list[str] = []
    tags: list[str] = []

    def sentence() -> Example:
        example: Example = {"tokens": list(tokens)}
        if need_labels:
            example["tags"] = list(tags)
        tokens.clear()
        tags.clear()
        return example

    with path.open(encoding="utf-8-sig") as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            cols = line.split("\t") if "\t" in line else line.split()
            if not line.strip() or cols[0].startswith("-DOCSTART-"):
                if tokens:
                    yield sentence()
                continue
            if need_labels and len(cols) < 2:
                raise DataError(
                    f"{path}:{lineno}: {line.strip()!r}: expected 'token<TAB>tag' "
                    "→ add the tag column or a blank line between sentences"
                )
            tokens.append(cols[0])
            if need_labels:
                try:
                    tags.append(cols[cfg.conll_tag_column].strip())
                except IndexError:
                    raise DataError(
                        f"{path}:{lineno}: no column {cfg.conll_tag_column} → set "
                        "data.conll_tag_column"
                    ) from None
    if tokens:
        yield sentence()


def read_hf(path: Path, cfg: DataConfig, kind: Kind, need_labels: bool) -> list[Example]:
    """Read a ``save_to_disk`` folder (one split) into examples."""
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        raise DataError(f"{path}: holds several splits → use data.dataset and data.splits")
    return rows_from_dataset(ds, cfg, kind, need_labels, str(path))


def rows_from_dataset(
    ds: Any, cfg: DataConfig, kind: Kind, need_labels: bool, origin: str
) -> list[Example]:
    """Convert a ``datasets.Dataset`` to examples, turning ClassLabel ids into names."""
    import datasets

    names: dict[str, list[str]] = {}
    for column, feature in ds.features.items():
        if isinstance(feature, datasets.ClassLabel):
            names[column] = feature.names
        elif isinstance(feature, (datasets.Sequence, datasets.List)) and isinstance(
            getattr(feature, "feature", None), datasets.ClassLabel
        ):
            names[column] = feature.feature.names
    out = []
    for i, row in enumerate(ds):
        for column, labels in names.items():
            value = row[column]
            row[column] = [labels[v] for v in value] if isinstance(value, list) else labels[value]
        where = f"{origin} row {i}"
        out.append(row_example(row, cfg, kind, where, need_labels))
    return out


def read_hf_dataset(cfg: DataConfig, kind: Kind) -> dict[str, list[Example]]:
    """Read the splits of ``data.dataset``: a ``save_to_disk`` folder or a hub dataset name."""
    import datasets

    assert cfg.dataset is not None
    folder = Path(cfg.dataset).expanduser()
    try:
        if folder.is_dir():
            loaded = datasets.load_from_disk(str(folder))
        else:
            loaded = datasets.load_dataset(cfg.dataset, cfg.subset)
    except Exception as exc:  # the hub and datasets raise many types: report any in one line
        raise DataError(
            f"data.dataset: {cfg.dataset!r}: cannot load ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:120]}) → check the name, the network, or "
            "use a save_to_disk folder"
        ) from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    splits: dict[str, list[Example]] = {}
    for ours, theirs in cfg.splits.items():
        if theirs in loaded:
            splits[ours] = rows_from_dataset(
                loaded[theirs], cfg, kind, kind != "lm", f"{cfg.dataset}[{theirs}]"
            )
    if "train" not in splits:
        raise DataError(
            f"data.dataset: {cfg.dataset!r} has no split {cfg.splits.get('train')!r} "
            f"(found {list(loaded)}) → set data.splits.train"
        )
    return splits


def read_texts(spec: str | Path, text_column: str = "text") -> list[str]:
    """Read the raw texts of a file, whatever its format, for corpus statistics.

    ``.txt``: one document per line; ``.jsonl``/``.csv``/``hf``: the ``text_column``;
    ``.conll``: each sentence's tokens joined by spaces.

    Args:
        spec: File path (or ``builtin:NAME/FILE``).
        text_column: Column holding the text (JSONL, CSV, hf).

    Returns:
        The texts, in file order.

    """
    path = resolve_path(str(spec))
    if not path.exists():
        raise DataError(f"{spec}: text file not found → check the path")
    fmt = detect_format(path)
    cfg = DataConfig(train=str(path), text_column=text_column)
    from domaintune.data import READERS

    kind: Kind = "tokens" if fmt == "conll" else "text"
    try:
        examples = READERS[fmt](path, cfg, kind, False)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason}) → save the file as UTF-8") from None
    return [" ".join(ex["tokens"]) if "tokens" in ex else ex["text"] for ex in examples]
