"""Streaming readers for prediction inputs: large files are never read whole."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from domaintune.config.sections import DataConfig
from domaintune.data.readers import (
    Example,
    Kind,
    detect_format,
    iter_conll,
    read_csv,
    resolve_path,
    row_example,
)
from domaintune.errors import DataError


def stream_split(spec: str | Path, cfg: DataConfig, kind: Kind) -> Iterator[Example]:
    """Yield the unlabelled examples of a prediction input file without reading it whole.

    JSONL, CSV/TSV, TXT and CoNLL are read line by line; a ``.json`` list and ``hf`` folders
    cannot be streamed and are read at once.
    """
    path = resolve_path(str(spec))
    if not path.exists():
        raise DataError(f"{spec}: input file not found → check the path")
    fmt = cfg.format if cfg.format != "auto" else detect_format(path)
    if fmt == "conll":
        yield from iter_conll(path, cfg, False)
    elif fmt == "txt":
        with path.open(encoding="utf-8-sig") as handle:
            yield from ({"text": line.rstrip("\r\n")} for line in handle if line.strip())
    elif fmt == "csv":
        if kind == "tokens":
            read_csv(path, cfg, kind, False)  # raises the one-line error
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            for lineno, row in enumerate(reader, start=2):
                yield row_example(row, cfg, kind, f"{path}:{lineno}", False)
    elif fmt == "jsonl" and path.suffix.lower() != ".json":
        with path.open(encoding="utf-8-sig") as handle:
            for lineno, line in enumerate(handle, start=1):
                if line.strip():
                    yield _jsonl_example(line, cfg, kind, f"{path}:{lineno}")
    else:
        from domaintune.data import READERS

        yield from READERS[fmt](path, cfg, kind, False)


def _jsonl_example(line: str, cfg: DataConfig, kind: Kind, where: str) -> Example:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{where}: invalid JSON ({exc.msg}) → write one JSON object per line"
        ) from None
    if not isinstance(row, dict):
        raise DataError(
            f"{where}: expected a JSON object, got {type(row).__name__} → write one object per line"
        )
    return row_example(row, cfg, kind, where, False)
