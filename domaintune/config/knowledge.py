"""The ``data.knowledge`` section: knowledge injection from a triples file (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class KnowledgeConfig(BaseModel):
    """Link entity mentions to a knowledge graph and attach their facts (see docs/knowledge.md).

    Classification and token classification: the facts of the linked entities are verbalised
    (``head relation tail .``) and appended to the input as a second segment, in training and
    in prediction. Language modelling: the linked mentions are masked first
    (``task.knowledge_masking: true``); nothing is appended.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    file: str = Field(
        min_length=1,
        description="Triples file: .tsv/.csv (head, relation, tail[, aliases separated by '|']; "
        "optional header row, '#' comment lines) or .jsonl ({head, relation, tail, aliases?}); "
        "or 'builtin:ncbi-disease/knowledge.tsv'.",
    )
    format: Literal["auto", "tsv", "csv", "jsonl"] = Field(
        "auto", description="Triples file format; auto picks it from the extension."
    )
    relations: list[str] | None = Field(
        None,
        description="Only facts with these relations are attached; null: every relation.",
    )
    max_facts_per_entity: int = Field(
        2, ge=1, le=100, description="At most this many facts of one entity (file order)."
    )
    max_fact_tokens: int = Field(
        64,
        ge=1,
        le=4096,
        description="At most this many tokens of facts per example; whole facts only, and never "
        "more than the room data.max_length leaves after the example's own tokens.",
    )
    mode: Literal["append"] = Field(
        "append",
        description="append: the facts form a second segment after the input ([SEP] facts "
        "[SEP]); the input's own tokens, positions and labels are unchanged.",
    )
    min_chars: int = Field(
        2, ge=1, le=100, description="Names shorter than this many characters are not linked."
    )
    case_sensitive_acronyms: bool = Field(
        True,
        description="Names written in capitals and digits only (e.g. 'AT', 'DM') match with "
        "their case (lower-cased they are common words); other Latin names match in any case.",
    )
