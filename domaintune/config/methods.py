"""Recipe sections for adaptation methods: what trains.

Defaults are the values the method comparison (``bench/methods.py``, docs/methods.md) found best
for MiniLM on nicta-piboso and ncbi-disease, so ``method: {name: X}`` alone gets a tuned setup.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from domaintune.config.sections import Section


def _decay() -> float:
    return Field(  # type: ignore[no-any-return]
        1.0,
        gt=0,
        le=1,
        description="Multiply the LR by this factor per layer going down (1.0 = no decay).",
    )


class FullConfig(Section):
    """Full fine-tuning: every parameter trains."""

    name: Literal["full"] = Field(description="Method name.")
    layerwise_lr_decay: float = _decay()


class FreezeConfig(Section):
    """Freeze the embeddings and/or the lowest layers; gradual unfreezing; layer-wise LR decay."""

    name: Literal["freeze"] = Field(description="Method name.")
    embeddings: bool = Field(True, description="Freeze the embedding layer.")
    layers: int = Field(0, ge=0, description="Freeze the first N transformer layers.")
    layerwise_lr_decay: float = _decay()
    gradual_unfreezing: bool = Field(
        False,
        description="ULMFiT-style: start with only the task head training, then unfreeze one "
        "more layer from the top at every stage (the frozen ones above stay frozen to the end).",
    )
    unfreeze_every: int | Literal["epoch"] = Field(
        "epoch",
        description="Stage length for gradual unfreezing: 'epoch' or a number of optimizer steps.",
    )


class BitFitConfig(Section):
    """BitFit (Ben Zaken et al., 2022): only the bias terms (and the task head) train."""

    name: Literal["bitfit"] = Field(description="Method name.")


TargetModules = list[str] | Literal["all-linear"] | None


class _PeftLoraBase(Section):
    r: int = Field(16, ge=1, le=1024, description="Rank of the update matrices.")
    alpha: float = Field(32, gt=0, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: TargetModules = Field(
        "all-linear",
        description="Module names to adapt, or 'all-linear' (every linear layer but the task "
        "head); null uses peft's default for the architecture (query/value for BERT).",
    )
    modules_to_save: list[str] = Field(
        [],
        description="Extra modules trained in full and saved with the adapter (the task head "
        "always is).",
    )


class LoraConfig(_PeftLoraBase):
    """LoRA (Hu et al., 2021) through peft; the task head always trains."""

    name: Literal["lora"] = Field(description="Method name.")
    train_norms: bool = Field(
        True,
        description="Also train every normalisation layer (LayerNorm, RMSNorm) in full, as full "
        "fine-tuning does; measured on ncbi-disease NER: +0.7 dev / +1.6 test entity-F1 points "
        "for 0.05% more parameters (docs/methods.md).",
    )
    rslora: bool = Field(False, description="Rank-stabilised scaling alpha / sqrt(r) (rsLoRA).")
    dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA, Liu et al., 2024).")
    loraplus_lr_ratio: float | None = Field(
        None,
        ge=1,
        le=1024,
        description="LoRA+ (Hayou et al., 2024): the B matrices train at this many times the "
        "learning rate of the A matrices (the paper suggests 16); null = one learning rate.",
    )
    head_lr: float | None = Field(
        None,
        gt=0,
        le=10,
        description="Learning rate of the task head (trained in full); null = train.lr. A "
        "newly initialised head at LoRA's high learning rate can lock token classification "
        "into predicting only O (measured: docs/methods.md).",
    )


class AdaLoraConfig(_PeftLoraBase):
    """AdaLoRA (Zhang et al., 2023): LoRA whose rank budget is pruned by importance in training."""

    name: Literal["adalora"] = Field(description="Method name.")
    r: int = Field(4, ge=1, le=1024, description="Average target rank after pruning.")
    init_r: int = Field(8, ge=1, le=1024, description="Starting rank of every adapted matrix.")
    warmup_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of steps before pruning starts (peft's tinit)."
    )
    final_fraction: float = Field(
        0.2, ge=0, lt=1, description="Share of steps at the end with the budget fixed (tfinal)."
    )
    orth_reg_weight: float = Field(0.5, ge=0, description="Orthogonality penalty weight.")


class IA3Config(Section):
    """(IA)^3 (Liu et al., 2022): learned vectors rescale keys, values and FFN activations."""

    name: Literal["ia3"] = Field(description="Method name.")
    target_modules: list[str] | None = Field(
        None, description="Modules to rescale; null uses peft's default for the architecture."
    )
    feedforward_modules: list[str] | None = Field(
        None, description="Which targets are feed-forward (scaled at the input); null = default."
    )
    modules_to_save: list[str] = Field([], description="Extra modules trained in full.")


class PrefixConfig(Section):
    """Prefix tuning (Li & Liang, 2021): learned key/value vectors prepended in every layer."""

    name: Literal["prefix"] = Field(description="Method name.")
    num_virtual_tokens: int = Field(
        20, ge=1, le=512, description="Prefix length: key/value vectors per layer and head."
    )
    projection: bool = Field(
        False,
        description="Reparameterise the prefix through a two-layer MLP during training (as in "
        "the paper; the saved prefix is the MLP's output, so loading needs no MLP). Off by "
        "default: on MiniLM the MLP moved the prefix so fast that every run from 1e-3 to 1e-2 "
        "collapsed to one class (docs/methods.md); with it, use a learning rate near 1e-4.",
    )
    projection_hidden: int = Field(512, ge=1, description="Hidden size of that MLP.")
    init: Literal["random", "vocab"] = Field(
        "vocab",
        description="vocab: start from the keys and values the frozen model computes for "
        "random vocabulary tokens (the paper's real-word initialisation; with projection, the "
        "MLP's output bias); random: small random vectors.",
    )


class PromptTuningConfig(Section):
    """Prompt tuning (Lester et al., 2021): learned input embeddings inserted into every input.

    Encoders get the soft prompt after their first token ([CLS] stays at position 0 for
    pooling); decoders get it at the start.
    """

    name: Literal["prompt_tuning"] = Field(description="Method name.")
    num_virtual_tokens: int = Field(
        20,
        ge=1,
        le=512,
        description="Soft prompt length (encoders: data.max_length plus this must fit the "
        "model's position embeddings).",
    )
    init: Literal["random", "vocab"] = Field(
        "vocab",
        description="vocab: copy the embeddings of random vocabulary tokens; random: normal "
        "noise with the embedding table's standard deviation.",
    )


class AdapterConfig(Section):
    """Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021)."""

    name: Literal["adapter"] = Field(description="Method name.")
    placement: Literal["houlsby", "pfeiffer"] = Field(
        "pfeiffer",
        description="houlsby: after the attention and the feed-forward sublayers of every "
        "block; pfeiffer: after the feed-forward sublayer only.",
    )
    reduction_factor: int = Field(
        16, ge=1, description="Bottleneck size = hidden size / reduction_factor."
    )
    activation: Literal["relu", "gelu", "swish"] = Field("relu", description="Bottleneck act.")
    train_layer_norm: bool = Field(
        True, description="Also train the blocks' LayerNorms (as both papers do)."
    )


PROMPT_TEXT = "{text}"  # where a template puts the example's text
PROMPT_MASK = "[MASK]"  # where a cloze template puts the mask (the tokenizer's own mask token)


class PromptingConfig(Section):
    """Prompt-based classification: templates and verbalisers (docs/prompting.md).

    Encoders score the verbaliser words at a ``[MASK]`` (PET-style cloze) or by similarity to
    the label texts; decoders score each verbalised label as a continuation of the prompt.
    """

    name: Literal["prompting"] = Field(description="Method name.")
    mode: Literal["finetune", "zero_shot", "in_context"] = Field(
        "finetune",
        description="finetune: train the model through the prompt (cross-entropy over the "
        "labels' scores); zero_shot: no training, the pretrained model scores the labels; "
        "in_context (decoders): no training, 'demonstrations' training examples per label are "
        "put in the prompt.",
    )
    scoring: Literal["auto", "cloze", "cloze_embeddings", "similarity", "label_likelihood"] = Field(
        "auto",
        description="How labels are scored. cloze: the MLM head's logits of the "
        "verbaliser words at [MASK]; cloze_embeddings: the [MASK] hidden state against the "
        "words' input embeddings (no MLM head); similarity: cosine of the mean-pooled "
        "prompt and verbaliser texts; label_likelihood (decoders): log-probability of each "
        "verbaliser as the prompt's continuation. auto: label_likelihood for decoders, "
        "cloze for encoders whose checkpoint has its MLM head, similarity for encoders "
        "without one (MiniLM; measured in docs/prompting.md).",
    )
    template: str | None = Field(
        None,
        description="The prompt of one example: '{text}' once, and '[MASK]' once for cloze "
        "scoring. null: encoders '{text} It was [MASK].', decoders 'Text: {text}\\nAnswer:'. "
        "Only the text is truncated to data.max_length, never the template.",
    )
    instruction: str | None = Field(
        None,
        description="Decoders: text once before the examples; '{labels}' becomes the "
        "verbaliser words joined by ', '. null: 'Classify the text into one of these "
        "categories: {labels}.' Chat models get instruction, demonstrations and example as "
        "chat turns (their chat template); others as plain text.",
    )
    verbalizer: dict[str, str | list[str]] | None = Field(
        None,
        description="Label -> word (or list of words, scored together by log-sum-exp) that "
        "stands for it; every label of the data needs one. null: the label names themselves "
        "('_' as a space). Cloze scoring uses a word's first sub-token (two labels may not share "
        "it).",
    )
    demonstrations: int = Field(
        2,
        ge=1,
        le=64,
        description="in_context: training examples per label rendered into every prompt (drawn "
        "once with demonstration_seed, saved with the run); the prompt must fit data.max_length.",
    )
    demonstration_seed: int = Field(0, description="in_context: seed of the demonstrations.")
    length_normalize: bool = Field(
        True,
        description="label_likelihood: score a label by its mean token log-probability (True) "
        "or the sum (False); the mean does not favour labels with fewer tokens.",
    )
    calibrate: bool | None = Field(
        None,
        description="Calibration: divide the label probabilities by those of calibration "
        "inputs in the same prompt (calibration_inputs: content-free ones by default, "
        "contextual calibration, Zhao et al., 2021). null: on for zero_shot and in_context, "
        "off for finetune.",
    )
    calibration_inputs: Literal["content_free", "train"] = Field(
        "content_free",
        description="What calibrate divides by: content_free, the mean log-probabilities of "
        "'N/A' and an empty text; train, the mean probabilities of up to calibration_size "
        "training texts, their labels unused (batch calibration, Zhou et al., 2024), for "
        "models that content-free inputs mislead.",
    )
    calibration_size: int = Field(
        32,
        ge=1,
        le=1024,
        description="calibration_inputs train: how many training texts (a seeded sample, "
        "in-context demonstrations excluded) estimate the label bias.",
    )
    similarity_scale: float = Field(
        20.0,
        gt=0,
        le=1000,
        description="similarity: cosine similarities are multiplied by this before the softmax "
        "(the usual sentence-transformers scale).",
    )
    adapter: Literal["none", "lora"] = Field(
        "none",
        description="finetune: none trains every parameter; lora trains LoRA matrices on every "
        "linear layer (and the norms), merged into final/ (set train.lr about 5e-4).",
    )
    lora_r: int = Field(8, ge=1, le=1024, description="adapter lora: rank.")
    lora_alpha: float = Field(16.0, gt=0, description="adapter lora: scaling numerator.")

    @model_validator(mode="after")
    def _template_slots(self) -> PromptingConfig:
        if self.template is not None:
            if self.template.count(PROMPT_TEXT) != 1:
                raise ValueError(f"template must contain {PROMPT_TEXT} exactly once")
            if self.template.count(PROMPT_MASK) > 1:
                raise ValueError(f"template may contain {PROMPT_MASK} once at most")
            if self.scoring in ("cloze", "cloze_embeddings") and PROMPT_MASK not in self.template:
                raise ValueError(f"cloze scoring needs {PROMPT_MASK} in the template")
        for label, words in (self.verbalizer or {}).items():
            listed = [words] if isinstance(words, str) else words
            if not listed or not all(w.strip() for w in listed):
                raise ValueError(f"verbalizer: {label!r}: give a non-empty word")
        if self.mode != "finetune" and self.adapter != "none":
            raise ValueError(f"adapter {self.adapter!r} trains: it needs mode finetune")
        return self


MethodConfig = Annotated[
    FullConfig
    | FreezeConfig
    | BitFitConfig
    | LoraConfig
    | AdaLoraConfig
    | IA3Config
    | PrefixConfig
    | PromptTuningConfig
    | AdapterConfig
    | PromptingConfig,
    Field(discriminator="name"),
]


# train.lr when a recipe leaves it out: the learning rate the method comparison picked on dev
# (bench/methods.py; docs/methods-table.md), per task where the tasks disagree
# (``DEFAULT_LR_BY_TASK``); until a method is measured, its usual range.
DEFAULT_LR: dict[str, float] = {
    "full": 1e-4,  # tasks the comparison did not measure (classification: DEFAULT_LR_BY_TASK)
    # measured with gradual unfreezing (every 100 steps, embeddings trained): nicta dev 1e-4
    # 0.754, 2e-4 0.757, 5e-4 0.749; ncbi dev entity F1 0.772 / 0.805 / 0.795
    "freeze": 2e-4,
    "bitfit": 3e-3,  # nicta dev: 1e-3 0.652, 3e-3 0.698, 1e-2 collapsed (0.472)
    "lora": 5e-4,  # nicta dev: 2e-4 0.725, 5e-4 0.747, 2e-3 collapsed to the majority class
    "adalora": 2e-3,  # nicta dev: 5e-4 0.698, 2e-3 0.753, 5e-3 0.748
    "ia3": 3e-2,  # nicta dev: 3e-3 0.720, 1e-2 0.740, 3e-2 0.749, 1e-1 0.556; ncbi the same pick
    # direct prefix (no MLP), nicta dev: 3e-3 0.632, 1e-2 0.728, 3e-2 0.734, 1e-1 0.652
    "prefix": 3e-2,
    "prompt_tuning": 1e-2,  # nicta dev: 3e-3 0.609, 1e-2 0.624, 3e-2 0.584
    # pfeiffer (the default placement), nicta dev 1e-3 0.712, 3e-3 0.733; ncbi the same pick.
    # Houlsby's placement wants 3e-4 on nicta (dev 0.660; 3e-3 collapsed): docs/methods.md
    "adapter": 3e-3,
    "prompting": 1e-4,  # finetune, every parameter (measured: docs/prompting.md)
}
DEFAULT_LR_BY_TASK: dict[tuple[str, str], float] = {
    # nicta-piboso dev accuracy (seed 42, re-measured 2026-12-06): 2e-5 0.719, 5e-5 0.749,
    # 1e-4 0.743, 2e-4 0.725
    ("full", "classification"): 5e-5,
    # ncbi-disease dev entity F1 (seed 42): 5e-5 0.813, 1e-4 0.830, 2e-4 0.841, 5e-4 0.814
    ("full", "token_classification"): 2e-4,
    # ncbi-disease dev entity F1 (seed 42, train_norms): 5e-4 0.783, 2e-3 0.814, 5e-3 collapsed
    # to all-O (norms frozen, 2026-11-28: 1e-3 0.810, 2e-3 0.817)
    ("lora", "token_classification"): 2e-3,
    # ncbi-disease dev entity F1 (seed 42): 1e-3 0.525, 3e-3 0.652, 1e-2 0.692, 3e-2 0.656
    ("bitfit", "token_classification"): 1e-2,
    # ncbi-disease dev entity F1 (seed 42): 5e-4 0.613, 2e-3 0.788, 5e-3 0.809, 2e-2 0.764
    ("adalora", "token_classification"): 5e-3,
    # ncbi-disease dev entity F1 (seed 42): 3e-3 0.430, 1e-2 0.580, 3e-2 0.688, 1e-1 0.712 (the
    # grid's last extension: higher may be better still)
    ("prefix", "token_classification"): 1e-1,
    # ncbi-disease dev entity F1 (seed 42): 1e-2 0.475, 3e-2 0.506, 1e-1 0.477
    ("prompt_tuning", "token_classification"): 3e-2,
}

# train.epochs when a recipe leaves it out, where the comparison found a method needs more than
# the TrainConfig default (keyed by method and task name).
DEFAULT_EPOCHS_BY_TASK: dict[tuple[str, str], float] = {}


def default_lr(method: str, task: str) -> float:
    """The tuned learning rate of ``method`` for ``task`` (a task name, e.g. ``classification``)."""
    return DEFAULT_LR_BY_TASK.get((method, task), DEFAULT_LR[method])
