"""Recipe section of the generation task: SFT of decoders, seq2seq, decoding and metrics.

Pydantic and the standard library only (``domaintune validate`` never imports torch).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from domaintune.config.sections import Section

GenerationMetric = Literal[
    "rouge1", "rouge2", "rouge_l", "bleu", "chrf", "exact_match", "perplexity"
]
GenerateSplit = Literal["validation", "test"]
# Metrics the loop can compute at every evaluation without generating text.
CHEAP_METRICS = ("perplexity", "loss")


def _default_metrics() -> list[GenerationMetric]:
    return ["rouge_l", "bleu", "chrf", "exact_match", "perplexity"]


def _test_only() -> list[GenerateSplit]:
    return ["test"]


class DecodingConfig(Section):
    """How text is generated for evaluation (``model.generate`` with a ``GenerationConfig``)."""

    strategy: Literal["greedy", "beam", "sample"] = Field(
        "greedy",
        description="greedy (argmax), beam (beam search over num_beams) or sample "
        "(temperature / top_p / top_k sampling, seeded).",
    )
    num_beams: int = Field(4, ge=2, le=64, description="strategy: beam only: beams.")
    temperature: float = Field(
        1.0, gt=0.0, le=100.0, description="strategy: sample only: softmax temperature."
    )
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="strategy: sample only: nucleus (top-p) mass."
    )
    top_k: int | None = Field(
        None, ge=1, description="strategy: sample only: keep the k most likely tokens."
    )
    max_new_tokens: int = Field(128, ge=1, le=8192, description="Most tokens generated.")
    repetition_penalty: float = Field(
        1.0, ge=1.0, le=10.0, description="Penalty on repeated tokens (1.0 = none)."
    )
    stop: list[str] = Field(
        default_factory=list,
        description="Stop strings: generation stops at the first and the text is cut there "
        "(the end-of-sequence / end-of-turn token always stops).",
    )
    seed: int = Field(0, description="strategy: sample only: seed of the draws.")

    @model_validator(mode="after")
    def _options_need_their_strategy(self) -> DecodingConfig:
        # a resolved recipe lists every default, so only values that differ are refused
        if self.num_beams != 4 and self.strategy != "beam":
            raise ValueError("num_beams applies to strategy: beam only → set strategy: beam")
        sampled = self.temperature != 1.0 or self.top_p != 1.0 or self.top_k is not None
        if sampled and self.strategy != "sample":
            raise ValueError(
                "temperature / top_p / top_k apply to strategy: sample only → set strategy: sample"
            )
        if any(not s for s in self.stop):
            raise ValueError("stop strings must not be empty → remove the empty string")
        return self


class GenerationTaskConfig(Section):
    """Text generation: instruction tuning (SFT) of decoders and seq2seq (T5/BART) training.

    The loss covers the output tokens only (the assistant turns of a chat, rendered with the
    model's chat template; the completion; the seq2seq target). Evaluation during training
    scores perplexity on the references; the final evaluation also generates text and scores
    it (``metrics``), writing ``predictions-<split>.jsonl`` into the run folder.
    """

    name: Literal["generation"] = Field(description="Task name.")
    format: Literal["auto", "instruction", "chat", "prompt_completion", "seq2seq"] = Field(
        "auto",
        description="Data rows: instruction (instruction/input/output), chat (messages in the "
        "OpenAI {role, content} or ShareGPT {from, value} shape), prompt_completion "
        "(prompt/completion), seq2seq (data.source_column/target_column); auto tells by the "
        "fields of each row.",
    )
    chat_template: str | None = Field(
        None,
        description="Jinja chat template for instruction/chat data; null: the tokenizer's own, "
        "or a plain 'role: content' template when it has none.",
    )
    packing: bool = Field(
        True,
        description="Decoders: pack several short training examples into one row (positions "
        "restart per example, attention stays inside each example); turned off with a warning "
        "where the model cannot keep packed examples apart.",
    )
    pack_length: int | None = Field(
        None,
        ge=8,
        le=65536,
        description="Length of packed training rows in tokens; null: data.max_length.",
    )
    max_target_length: int | None = Field(
        None,
        ge=1,
        le=8192,
        description="Seq2seq: most target tokens (longer ones are cut); null: data.max_length.",
    )
    decoding: DecodingConfig = Field(
        default_factory=lambda: DecodingConfig(), description="Decoding options."
    )
    metrics: list[GenerationMetric] = Field(
        default_factory=_default_metrics,
        description="Final-evaluation metrics: rouge1/rouge2/rouge_l (mean F1, 0-100), bleu "
        "and chrf (sacrebleu corpus scores, 0-100), exact_match (fraction), perplexity (on the "
        "reference tokens; always computed). Any but perplexity makes the model generate.",
    )
    generate_splits: list[GenerateSplit] = Field(
        default_factory=_test_only,
        description="Splits the final evaluation generates text for.",
    )
    max_generate: int | None = Field(
        200,
        ge=1,
        description="Generate for at most the first N examples of a split (generation on a "
        "CPU is slow); null: all. Perplexity always covers the whole split.",
    )
    evaluate_before: bool = Field(
        False,
        description="Also score the test split before training (perplexity, and generation "
        "metrics with predictions in predictions-test-before.jsonl): results.json 'before'.",
    )

    @property
    def generates(self) -> bool:
        """Whether the final evaluation generates text (a metric other than perplexity)."""
        return any(m != "perplexity" for m in self.metrics)
