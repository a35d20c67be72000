"""Encoded (tokenised) splits as ragged numpy arrays, cached on disk by a content fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from domaintune.config.sections import DataConfig
    from domaintune.data.readers import Example


@dataclass
class Encoded:
    """A tokenised split: each feature is one 1-D array per example (ragged)."""

    features: dict[str, list[np.ndarray]]

    def __len__(self) -> int:
        return len(self.features["input_ids"])

    @property
    def lengths(self) -> list[int]:
        """Token count of each example (drives length grouping and sorting)."""
        return [len(a) for a in self.features["input_ids"]]

    def subset(self, indices: list[int]) -> Encoded:
        """The examples at ``indices``, in that order."""
        return Encoded({k: [v[i] for i in indices] for k, v in self.features.items()})


def fingerprint(*parts: Any) -> str:
    """A stable SHA-256 over JSON-serialisable parts (data, tokenizer identity, options)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def default_cache_dir() -> Path:
    """The per-user cache folder for tokenised data."""
    return Path.home() / ".cache" / "domaintune" / "encoded"


def cached_encode(
    key: str, cache_dir: Path | None, build: Callable[[], Encoded]
) -> tuple[Encoded, bool]:
    """Load the encoded split stored under ``key``, or build and store it.

    Returns:
        The encoded split and whether it came from the cache.

    """
    if cache_dir is None:
        return build(), False
    path = cache_dir / f"{key}.npz"
    if path.is_file():
        try:
            return _load(path), True
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged cache entry is rebuilt below
    encoded = build()
    cache_dir.mkdir(parents=True, exist_ok=True)
    _save(encoded, path)
    return encoded, False


def _save(encoded: Encoded, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, values in encoded.features.items():
        arrays[f"{name}.values"] = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
        arrays[f"{name}.offsets"] = np.cumsum([0] + [len(v) for v in values]).astype(np.int64)
    # Write to a temporary file and rename, so an interrupted run never leaves half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def _load(path: Path) -> Encoded:
    with np.load(path, allow_pickle=False) as data:
        names = sorted({k.rsplit(".", 1)[0] for k in data.files})
        features = {}
        for name in names:
            values, offsets = data[f"{name}.values"], data[f"{name}.offsets"]
            features[name] = [values[a:b] for a, b in pairwise(offsets)]
    return Encoded(features)


def encode_split(
    task: Any,
    examples: list[Example],
    tokenizer: Any,
    tokenizer_id: str,
    data: DataConfig,
    split: str | None = None,
) -> Encoded:
    """Tokenise a split, reusing the cache when data, tokenizer and options are unchanged.

    The key of the training split also holds the subset and augmentation settings, so a
    changed augmentation never meets a stale cache entry (the examples are hashed as well).
    """
    if data.cache_dir == "none":
        cache: Path | None = None
    else:
        cache = Path(data.cache_dir).expanduser() if data.cache_dir else default_cache_dir()
    parts: list[Any] = [type(task).__name__, task.state(), tokenizer_id, data.max_length]
    if split == "train" and (data.augment or data.train_subset is not None):
        from domaintune.data.augment import augmentation_key

        parts.append(augmentation_key(data))
    if data.knowledge is not None:  # the graph's options and content hash
        from domaintune.data.knowledge import knowledge_identity

        parts.append(knowledge_identity(data.knowledge))
    key = fingerprint(*parts, examples)
    encoded, _ = cached_encode(
        key, cache, lambda: task.encode(examples, tokenizer, data.max_length)
    )
    return encoded


def tokenizer_identity(tokenizer: Any) -> str:
    """A fingerprint of the tokenizer's full definition (vocabulary, normaliser, specials)."""
    return fingerprint(
        type(tokenizer).__name__, tokenizer.backend_tokenizer.to_str(), tokenizer.pad_token_id
    )
