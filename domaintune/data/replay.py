"""Replay (rehearsal): mix a seeded sample of earlier tasks' training examples into train.

Only the training split grows; validation and test stay the current task's, so the run's
scores measure the current task and the forgetting matrix measures the earlier ones.
"""

from __future__ import annotations

import random
from typing import Any

from domaintune.config.sections import DataConfig
from domaintune.data.pipeline import RawSplits, clean_example
from domaintune.data.readers import Example, Kind, read_split


def sample_replay(cfg: DataConfig, kind: Kind) -> tuple[list[Example], dict[str, Any]]:
    """The replay buffer of ``cfg.replay``: ``fraction`` of each earlier file, seeded.

    Each file contributes ``round(fraction * its size)`` examples (at least one), drawn without
    replacement by ``random.Random(seed)``, so the same seed gives the same buffer.
    """
    assert cfg.replay is not None
    rng = random.Random(cfg.replay.seed)
    read_cfg = cfg.model_copy(update={"format": "auto", "replay": None})
    buffer: list[Example] = []
    per_file: dict[str, int] = {}
    for spec in cfg.replay.files:
        examples = read_split(spec, read_cfg, kind)
        keep = min(len(examples), max(1, round(cfg.replay.fraction * len(examples))))
        chosen = [examples[i] for i in sorted(rng.sample(range(len(examples)), keep))]
        if cfg.clean.normalize:
            for example in chosen:
                clean_example(example)
        buffer.extend(chosen)
        per_file[spec] = keep
    return buffer, {"fraction": cfg.replay.fraction, "seed": cfg.replay.seed, "files": per_file}


def mix_replay(raw: RawSplits, cfg: DataConfig, kind: Kind) -> RawSplits:
    """Append the replay buffer to the training split (a no-op without ``data.replay``).

    The buffer goes at the end (the batch sampler shuffles); ``raw.stats["replay"]`` records
    how many examples it holds and their share of the mixed training split.
    """
    if cfg.replay is None:
        return raw
    buffer, stats = sample_replay(cfg, kind)
    raw.splits["train"] = [*raw.splits["train"], *buffer]
    stats["examples"] = len(buffer)
    stats["share_of_train"] = round(len(buffer) / max(1, len(raw.splits["train"])), 4)
    raw.stats["replay"] = stats
    raw.stats.setdefault("sizes", {})["train"] = len(raw.splits["train"])
    return raw
