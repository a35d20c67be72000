"""The augment stage: new training examples from ``data.augment``, appended to train only.

Order of the data stage: read → clean → dedupe → split → train subset → replay → labels →
**augment** → encode. Every augmentation reads the original training examples of this task
(not replayed ones, not another augmentation's output), and its random draws come from
``random.Random("<seed>/<position>/<example>/<copy>")``, so the result depends on the seed
and the data only (not on the order of work, the process or ``PYTHONHASHSEED``).
Validation and test are never read or changed. A new example equal to a training example or
to an earlier new one is dropped. Token examples are checked to be aligned IOB2 sequences.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from domaintune.config.sections import DataConfig, ModelConfig
from domaintune.data.augment_text import alignment_problem, detect_language, uses_char_tokens
from domaintune.data.pipeline import RawSplits, example_texts
from domaintune.data.readers import Example, Kind

# The fields that make two examples the same (other keys, like a multi-task index, do not).
_CONTENT = ("text", "text_pair", "tokens", "tags", "label")


@dataclass(frozen=True)
class AugmentContext:
    """What an augmentation may know besides its section: the task kind and the original train.

    Attributes:
        kind: ``text``, ``tokens`` or ``lm``.
        train: The original training examples (mention pools come from here).
        language: ``en`` or ``zh``, detected from the training text.
        char_tokens: Token data with one CJK character a token.
        model: The recipe's model section (contextual substitution's default model).
        seed: The augmentation's seed.
        index: The augmentation's position in ``data.augment``.

    """

    kind: Kind
    train: list[Example]
    language: str
    char_tokens: bool
    model: ModelConfig | None = None
    seed: int = 0
    index: int = 0

    def rng(self, example: int, copy: int) -> random.Random:
        """The random numbers of one copy of one example (a string seed hashes with SHA-512)."""
        return random.Random(f"{self.seed}/{self.index}/{example}/{copy}")


def augment_train(
    raw: RawSplits, cfg: DataConfig, kind: Kind, model: ModelConfig | None = None
) -> RawSplits:
    """Append each augmentation's new examples to the training split (a no-op without any).

    ``raw.stats["augment"]`` records, per augmentation, the examples added, the duplicates
    dropped and the seconds taken.
    """
    if not cfg.augment:
        return raw
    from domaintune.data import AUGMENTATIONS

    train = raw.splits["train"]
    replayed = int(raw.stats.get("replay", {}).get("examples", 0))
    own = train[: len(train) - replayed]  # replayed examples (at the end) are not augmented
    ctx = AugmentContext(
        kind, own, detect_language(example_texts(own)), uses_char_tokens(own), model
    )
    seen = {_key(e) for e in train}
    added: list[Example] = []
    records = []
    for index, section in enumerate(cfg.augment):
        start = time.perf_counter()
        produced, info = AUGMENTATIONS[section.name](  # type: ignore[operator]
            own, section, replace(ctx, seed=section.seed, index=index)
        )
        kept = []
        for _, example in produced:
            key = _key(example)
            if key in seen:
                continue
            if kind == "tokens" and (problem := alignment_problem(example)) is not None:
                raise RuntimeError(f"data.augment.{index} ({section.name}) broke tags: {problem}")
            seen.add(key)
            kept.append(example)
        added += kept
        records.append(
            {
                "name": section.name,
                "added": len(kept),
                "duplicates_dropped": len(produced) - len(kept),
                "seconds": round(time.perf_counter() - start, 3),
                **info,
            }
        )
    raw.splits["train"] = [*train, *added]
    raw.stats["augment"] = {
        "source_examples": len(own),
        "added": len(added),
        "language": ctx.language,
        "seconds": round(sum(r["seconds"] for r in records), 3),
        "augmentations": records,
    }
    raw.stats.setdefault("sizes", {})["train"] = len(raw.splits["train"])
    return raw


def augmentation_key(cfg: DataConfig) -> list[dict[str, Any]]:
    """The augmentation and subset settings, for the tokenisation cache key of train."""
    subset = cfg.train_subset.model_dump() if cfg.train_subset is not None else None
    return [{"train_subset": subset}, *(a.model_dump() for a in cfg.augment)]


def _key(example: Example) -> str:
    return json.dumps([example.get(k) for k in _CONTENT], ensure_ascii=False, default=str)
