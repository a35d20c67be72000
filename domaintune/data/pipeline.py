"""Read → clean → dedupe → split → train subset: the data stage up to labels and augmentation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domaintune.config.sections import DataConfig
from domaintune.data.clean import clean_layout, clean_text, clean_token, dedupe
from domaintune.data.instructions import generation_text
from domaintune.data.readers import Example, Kind, read_hf_dataset, read_split
from domaintune.data.split import stratified_split, stratified_subset


@dataclass
class RawSplits:
    """Cleaned examples per split, with where each came from and what cleaning did."""

    splits: dict[str, list[Example]]
    origins: dict[str, str]
    stats: dict[str, Any] = field(default_factory=dict)


def load_splits(cfg: DataConfig, kind: Kind) -> RawSplits:
    """Read, clean and (if needed) split the recipe's data.

    Args:
        cfg: The recipe's data section.
        kind: ``"text"`` for sequence tasks, ``"tokens"`` for token classification.

    Returns:
        Train/validation/test examples (validation and test may be created by a seeded,
        stratified split of train when the recipe gives none).

    """
    if cfg.format == "hf" and cfg.dataset is not None:
        splits = read_hf_dataset(cfg, kind)
        origins = {name: f"{cfg.dataset}[{cfg.splits.get(name, name)}]" for name in splits}
    else:
        splits, origins = {}, {}
        for name in ("train", "validation", "test"):
            spec = getattr(cfg, name)
            if spec is not None:
                splits[name] = read_split(spec, cfg, kind)
                origins[name] = spec
    stats: dict[str, Any] = {}
    if cfg.clean.normalize:
        for examples in splits.values():
            for example in examples:
                clean_example(example)
    if cfg.clean.dedupe:
        splits["train"], dropped = dedupe(splits["train"], _example_key)
        stats["duplicates_dropped"] = dropped
    missing = [name for name in ("validation", "test") if name not in splits]
    if missing:
        strata = [str(e.get("label")) for e in splits["train"]] if kind == "text" else None
        parts = stratified_split(
            splits["train"],
            strata,
            validation=cfg.split.validation if "validation" in missing else 0.0,
            test=cfg.split.test if "test" in missing else 0.0,
            seed=cfg.split.seed,
        )
        for name, examples in parts.items():
            if name == "train" or name in missing:
                splits[name] = examples
                origins.setdefault(name, f"{origins['train']} (split, seed {cfg.split.seed})")
        stats["split_from_train"] = missing
    if cfg.train_subset is not None:
        before = len(splits["train"])
        types = [_entity_types(e) for e in splits["train"]] if kind == "tokens" else None
        splits["train"] = stratified_subset(
            splits["train"],
            subset_strata(splits["train"], kind),
            **cfg.train_subset.model_dump(),
            cover=types,
        )
        stats["train_subset"] = {**cfg.train_subset.model_dump(), "from": before}
    if cfg.few_shot is not None:
        from domaintune.data.few_shot import sample_few_shot

        splits["train"] = sample_few_shot(splits["train"], cfg.few_shot, origins["train"])
        stats["few_shot"] = {"k": cfg.few_shot.k, "seed": cfg.few_shot.seed}
    stats["sizes"] = {name: len(examples) for name, examples in splits.items()}
    return RawSplits(splits=splits, origins=origins, stats=stats)


def subset_strata(examples: list[Example], kind: Kind) -> list[str] | None:
    """What a training subset is stratified by: the label, or a sentence's set of entity types."""
    if kind == "text":
        return [str(e.get("label")) for e in examples]
    if kind == "tokens":
        return ["|".join(sorted(_entity_types(e))) for e in examples]
    return None


def _entity_types(example: Example) -> set[str]:
    """Entity types of a token example (the prefix of any tag scheme, IOB2/IOBES/BMES, cut)."""
    return {t.split("-", 1)[-1] for t in example.get("tags", []) if t != "O"}


def clean_example(example: Example) -> None:
    """Clean an example's text, text pair and tokens in place."""
    if "text" in example:
        example["text"] = clean_text(example["text"])
    if "text_pair" in example:
        example["text_pair"] = clean_text(example["text_pair"])
    if "tokens" in example:
        example["tokens"] = [clean_token(t) for t in example["tokens"]]
    for message in example.get("messages", []):  # generation text keeps its line breaks
        message["content"] = clean_layout(message["content"])
    for key in ("prompt", "completion"):
        if key in example:
            example[key] = clean_layout(example[key])


def _example_key(example: Example) -> str:
    return repr(sorted(example.items()))


def example_texts(examples: list[Example]) -> list[str]:
    """The text of each example (token examples joined with spaces)."""
    return [
        e["text"] if "text" in e else " ".join(e["tokens"]) if "tokens" in e else generation_text(e)
        for e in examples
    ]
