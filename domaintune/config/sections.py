"""Recipe sections for tasks, model, data, training and evaluation (pydantic and stdlib only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from domaintune.config.augment import AugmentConfig, TrainSubsetConfig
from domaintune.config.base import Section as Section  # re-exported for section modules
from domaintune.config.knowledge import KnowledgeConfig


# --------------------------------------------------------------------------------------- tasks
class ClassificationTaskConfig(Section):
    """Sequence classification: single-label, multi-label or regression."""

    name: Literal["classification"] = Field(description="Task name.")
    problem: Literal["single_label", "multi_label", "regression"] = Field(
        "single_label",
        description="single_label (softmax + cross-entropy), multi_label (sigmoid + BCE) "
        "or regression (one output, MSE).",
    )
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="multi_label decision threshold; null tunes it on the validation split.",
    )
    label_separator: str | None = Field(
        None,
        description="multi_label only: separator inside a string label cell, e.g. ';' "
        "(JSON lists need none).",
    )


class TokenClassificationTaskConfig(Section):
    """Token classification (NER) with IOB2 tags and entity-level metrics."""

    name: Literal["token_classification"] = Field(description="Task name.")
    head: Literal["softmax", "crf"] = Field(
        "crf",
        description="Tagging head: crf (a linear-chain CRF over words with IOB2 constraints, "
        "Viterbi decoding; the default: it matched or beat softmax for every method in the "
        "method comparison, docs/methods.md) or softmax (each word on its own).",
    )
    crf_lr_multiplier: float = Field(
        1.0,
        ge=1.0,
        le=1000.0,
        description="head: crf only: LR multiplier for the CRF's start/end/transition scores "
        "(zero at the start; AdamW moves each by about the LR a step, so at lr 1e-4 they stay "
        "small). 1 = the same LR as the rest.",
    )
    repair_tags: bool = Field(
        True,
        description="Repair IOB2 violations (an I-X after O becomes B-X) instead of failing; "
        "IOBES/BMES tags are always converted to IOB2.",
    )

    @model_validator(mode="after")
    def _crf_options_need_crf(self) -> TokenClassificationTaskConfig:
        if self.crf_lr_multiplier != 1.0 and self.head != "crf":
            raise ValueError("crf_lr_multiplier applies to head: crf only → set head: crf")
        return self


class LanguageModelingTaskConfig(Section):
    """Continued pretraining on raw text (DAPT) or on a task's own text (TAPT).

    Documents are packed: tokenised, concatenated and cut into blocks of ``data.max_length``
    tokens (separators between documents, no padding).
    """

    name: Literal["language_modeling"] = Field(description="Task name.")
    objective: Literal["auto", "mlm", "clm"] = Field(
        "auto",
        description="mlm (masked LM, encoders), clm (causal LM, decoders); auto picks by model.",
    )
    mask_probability: float = Field(
        0.15, gt=0.0, lt=1.0, description="mlm: fraction of tokens to predict."
    )
    whole_word_masking: bool = Field(
        False,
        description="mlm: mask every piece of a chosen word together (Chinese words come from "
        "jieba word segmentation).",
    )
    knowledge_masking: bool = Field(
        False,
        description="mlm: mask the entity mentions linked to data.knowledge first (each mention "
        "whole), then whole words up to mask_probability; needs data.knowledge.",
    )
    head_lr_multiplier: float = Field(
        10.0,
        ge=1.0,
        le=1000.0,
        description="LR multiplier for LM-head parameters the checkpoint lacks (newly "
        "initialised, e.g. MiniLM's MLM head), so the head catches up with the encoder.",
    )


# --------------------------------------------------------------------------------------- model
class VocabExpansionConfig(Section):
    """Domain vocabulary expansion from the training text."""

    min_count: int = Field(
        2, ge=1, description="Only add words/characters seen at least this often in train."
    )
    max_new: int | None = Field(
        None, ge=1, description="At most this many new tokens (best-ranked first); null: all."
    )
    min_pieces: int = Field(
        3,
        ge=2,
        description="A known-character word is a candidate when the tokenizer cuts it into "
        "at least this many pieces.",
    )


class ModelConfig(Section):
    """Which pretrained model to start from."""

    name: str = Field(
        "minilm",
        min_length=1,
        description="Built-in alias (minilm, smollm2), local folder, .gguf file or hub id "
        "'org/name'.",
    )
    init_from: str | None = Field(
        None, description="Start from a previous run's final/ folder instead of 'name'."
    )
    expand_vocab: VocabExpansionConfig | None = Field(
        None,
        description="Add domain words/characters the tokenizer splits badly or maps to [UNK] "
        "(found in the training text); null keeps the vocabulary.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(False, description="Allow custom code from the hub.")
    gradient_checkpointing: bool = Field(
        False, description="Trade compute for memory by recomputing activations."
    )


# ---------------------------------------------------------------------------------------- data
class CleanConfig(Section):
    """Text cleaning applied to every split before labels are mapped."""

    normalize: bool = Field(True, description="Unicode NFKC, control characters, whitespace.")
    dedupe: bool = Field(True, description="Drop exact duplicates inside the training split.")


class SplitConfig(Section):
    """How to split data when the recipe gives only a training file."""

    validation: float = Field(0.1, ge=0.0, lt=0.5, description="Validation fraction.")
    test: float = Field(0.1, ge=0.0, lt=0.5, description="Test fraction.")
    seed: int = Field(42, description="Seed of the stratified split.")


class ReplayConfig(Section):
    """Replay: a seeded sample of earlier tasks' training examples mixed into training."""

    files: list[str] = Field(
        min_length=1,
        description="Earlier tasks' training files (read like this recipe's data, format from "
        "the extension); 'stage:<name>' in a pipeline means that stage's training file.",
    )
    fraction: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="Share of the earlier examples kept (the buffer): 0.05 mixes 5% of them "
        "into the training split (never into validation or test).",
    )
    seed: int = Field(0, description="Seed of the sample.")


class FewShotConfig(Section):
    """Few-shot learning: keep k training examples per class (validation and test stay whole)."""

    k: int = Field(ge=1, le=100_000, description="Training examples kept per class.")
    seed: int = Field(0, description="Seed of the sample: one seed, one training set.")


class DataConfig(Section):
    """Where the data is and how to read it."""

    format: Literal["auto", "csv", "jsonl", "txt", "conll", "hf"] = Field(
        "auto", description="File format; auto picks it from the file extension."
    )
    train: str | None = Field(
        None,
        description="Training file, a load_from_disk folder, or "
        "'builtin:ncbi-disease/train.conll'.",
    )
    validation: str | None = Field(
        None, description="Validation file (split from train if absent)."
    )
    test: str | None = Field(None, description="Test file (split from train if absent).")
    reference_text: str | None = Field(
        None,
        description="General-domain text file (.txt, one document per line) for the "
        "forgetting measure: LM perplexity on it before and after training.",
    )
    dataset: str | None = Field(
        None, description="format hf only: a hub dataset name or a save_to_disk folder."
    )
    subset: str | None = Field(None, description="format hf only: dataset configuration name.")
    splits: dict[str, str] = Field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"},
        description="format hf only: our split name -> the dataset's split name.",
    )
    text_column: str = Field("text", description="Column holding the text.")
    text_pair_column: str | None = Field(None, description="Optional second text column.")
    label_column: str = Field("label", description="Column holding the label.")
    tokens_column: str = Field("tokens", description="hf/jsonl token classification: tokens.")
    tags_column: str = Field("tags", description="hf/jsonl token classification: tags.")
    source_column: str = Field(
        "source", description="generation, seq2seq rows: column holding the input text."
    )
    target_column: str = Field(
        "target", description="generation, seq2seq rows: column holding the output text."
    )
    conll_tag_column: int = Field(-1, description="CoNLL: index of the tag column (-1 = last).")
    max_length: int = Field(128, ge=8, le=8192, description="Truncate to this many tokens.")
    clean: CleanConfig = Field(
        default_factory=lambda: CleanConfig(), description="Cleaning options."
    )
    split: SplitConfig = Field(
        default_factory=lambda: SplitConfig(), description="Automatic split."
    )
    replay: ReplayConfig | None = Field(
        None, description="Mix a sample of earlier tasks' training examples into train."
    )
    train_subset: TrainSubsetConfig | None = Field(
        None,
        description="Keep a seeded subset of the training split (stratified by label), "
        "after any automatic split and before augmentation: low-resource experiments.",
    )
    augment: list[AugmentConfig] = Field(
        default_factory=list,
        description="Data augmentations of the training split (never validation or test), "
        "each applied to the original examples and appended: eda, mention_replacement, "
        "contextual, back_translation (docs/augmentation.md).",
    )
    knowledge: KnowledgeConfig | None = Field(
        None,
        description="Knowledge injection from a triples file: linked entities' facts appended "
        "to every split's inputs (and at prediction); language modelling: knowledge masking.",
    )
    few_shot: FewShotConfig | None = Field(
        None,
        description="Single-label classification: train on k examples per class, sampled "
        "from the training split by seed (after validation/test are split off it); an error "
        "if a class has fewer than k.",
    )
    cache_dir: str | None = Field(
        None,
        description="Where tokenised data is cached by content fingerprint "
        "(default ~/.cache/domaintune/encoded); 'none' disables the cache.",
    )

    @model_validator(mode="after")
    def _need_a_source(self) -> DataConfig:
        if self.train is None and self.dataset is None:
            raise ValueError("give data.train (a file) or data.dataset (format hf)")
        return self


# --------------------------------------------------------------------------------------- train
class EarlyStoppingConfig(Section):
    """Stop when the evaluation metric stops improving."""

    patience: int = Field(3, ge=1, description="Evaluations without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change counted as improvement.")


class TrainConfig(Section):
    """Optimisation and the training loop."""

    epochs: float = Field(
        3.0, gt=0, le=1000, description="Number of passes over the training data."
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    lr: float = Field(
        None,  # type: ignore[assignment]  # the Recipe fills it in from the method
        gt=0,
        le=10,
        description="Peak learning rate; left out: the method's tuned default "
        "(docs/methods.md, e.g. 1e-4 for full fine-tuning, 5e-4 for lora).",
    )
    batch_size: int = Field(16, ge=1, description="Global batch size (all processes together).")
    eval_batch_size: int = Field(64, ge=1, description="Batch size for evaluation and prediction.")
    gradient_accumulation: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="Optimizer.")
    weight_decay: float = Field(
        0.01, ge=0, description="Decoupled weight decay (not on biases/norms)."
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        "linear", description="Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="Fraction of steps for linear warm-up."
    )
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping; null disables.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="auto: bf16 autocast on a bf16 GPU or a CPU with bf16 units "
        "(AVX512-BF16/AMX), else fp32.",
    )
    seed: int = Field(42, description="Seed for weights, dropout and batch order.")
    group_by_length: bool = Field(
        True, description="Length-grouped batches (shuffled mega-batches sorted by length)."
    )
    mega_batch_factor: int = Field(
        50, ge=1, description="Mega-batch size in batches, for length grouping."
    )
    eval_every: int | None = Field(
        None, ge=1, description="Evaluate every N optimizer steps; null evaluates each epoch."
    )
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="Save a resumable checkpoint every N steps; null: at each evaluation.",
    )
    keep_checkpoints: int = Field(1, ge=1, description="How many resumable checkpoints to keep.")
    early_stopping: EarlyStoppingConfig | None = Field(
        None, description="Early stopping on eval.metric; null disables."
    )
    log_every: int = Field(20, ge=1, description="Log the training loss every N steps.")
    processes: int = Field(
        1, ge=1, le=512, description="Data-parallel processes on this machine (DDP via Accelerate)."
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads per process; null: cores divided by processes."
    )
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list,
        description="Experiment trackers through Accelerate, logging what metrics.jsonl gets: "
        "tensorboard (needs tensorboard or tensorboardX; logs in <run>/tensorboard), mlflow "
        "(needs mlflow: pip install 'domaintune[mlflow]'; a local SQLite store in "
        "<run>/mlruns/mlflow.db, no server).",
    )


# ---------------------------------------------------------------------------------------- eval
class EvalConfig(Section):
    """Which metric selects the best checkpoint."""

    metric: str | None = Field(
        None,
        description="Metric for best checkpoint and early stopping (default: the task's, "
        "f1_macro / entity_f1 / mse).",
    )
    greater_is_better: bool | None = Field(
        None, description="Direction of eval.metric; null infers it from the name."
    )
