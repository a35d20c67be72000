"""Classification through a prompt (``method: prompting``): the classification task, re-encoded.

:class:`PromptTask` wraps a single-label :class:`ClassificationTask`. Labels, loss, metrics
and predictions stay that task's; what changes is the model class (a masked or causal LM
instead of a sequence classifier), the encoding (every text inside a template) and the module
that gives the (B, C) label scores (``models.prompt_scorers``). Everything a saved run needs to
predict again (resolved scoring, verbaliser, demonstrations) is in :meth:`PromptTask.state`.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from domaintune.config.methods import PromptingConfig
from domaintune.data.encode import Encoded
from domaintune.data.pipeline import RawSplits
from domaintune.data.readers import Example, Kind
from domaintune.errors import ConfigError, DataError
from domaintune.tasks import prompt_plan
from domaintune.tasks.classification import ClassificationTask
from domaintune.tasks.language_modeling import objective_for

_ENCODER_SCORING = ("cloze", "cloze_embeddings", "similarity")


class PromptTask:
    """Single-label classification by scoring verbalised labels with a language model."""

    kind: Kind = "text"

    def __init__(
        self, base: ClassificationTask, prompt: PromptingConfig, state: dict[str, Any] | None
    ) -> None:
        """Wrap ``base``; ``state`` (a saved run's) fixes what was resolved in training."""
        if base.cfg.problem != "single_label":
            raise ConfigError(
                f"method: prompting: task.problem: {base.cfg.problem!r}: prompts score one "
                "label per text → use problem: single_label"
            )
        self.base = base
        self.cfg = base.cfg
        self.prompt = prompt
        self.default_metric = base.default_metric
        saved = (state or {}).get("prompt", {})
        self.architecture: str = saved.get("architecture", "")  # encoder | decoder
        self.scoring: str = saved.get("scoring") or (
            "" if prompt.scoring == "auto" else prompt.scoring
        )
        self.demonstrations: list[dict[str, str]] = list(saved.get("demonstrations", []))
        self.calibration_texts: list[str] = list(saved.get("calibration_texts", []))
        self._max_length = 10**6  # data.max_length, once encode() has seen it
        self.plan: prompt_plan.PromptPlan | None = None
        self.mask_id: int | None = None
        self._cloze_error: ConfigError | None = None

    @property
    def labels(self) -> list[str]:
        """The classification task's labels."""
        return self.base.labels

    @property
    def calibrate(self) -> bool:
        """Calibration: on without training (zero_shot, in_context) unless set."""
        if self.prompt.calibrate is not None:
            return self.prompt.calibrate
        return self.prompt.mode != "finetune"

    @property
    def batch_calibration(self) -> bool:
        """Calibrating by the mean probabilities of training texts (not content-free ones)."""
        return self.calibrate and self.prompt.calibration_inputs == "train"

    # ---------------------------------------------------------------------------- labels
    def fit_labels(self, raw: RawSplits) -> None:
        """The classification task's labels; draw the demonstrations and calibration texts."""
        if any("text_pair" in e for e in raw.splits["train"][:1]):
            raise ConfigError(
                f"{raw.origins['train']}: data.text_pair_column: method prompting puts one text "
                "in its template → leave text_pair_column out"
            )
        self.base.fit_labels(raw)
        prompt_plan.verbalizer(self.labels, self.prompt.verbalizer)  # checks it early
        if self.prompt.mode == "in_context" and not self.demonstrations:
            self.demonstrations = self._draw(raw.splits["train"], raw.origins["train"])
        if self.batch_calibration and not self.calibration_texts:
            shown = {d["text"] for d in self.demonstrations}
            pool = [str(e["text"]) for e in raw.splits["train"] if e["text"] not in shown]
            rng = random.Random(f"{self.prompt.demonstration_seed}/calibration")
            self.calibration_texts = rng.sample(pool, min(self.prompt.calibration_size, len(pool)))
            if not self.calibration_texts:
                raise DataError(
                    f"{raw.origins['train']}: method.calibration_inputs: train: no training "
                    "text besides the demonstrations → use calibration_inputs: content_free"
                )

    def _draw(self, examples: list[Example], origin: str) -> list[dict[str, str]]:
        """``demonstrations`` examples per label, seeded, in a shuffled order."""
        rng = random.Random(self.prompt.demonstration_seed)
        k = self.prompt.demonstrations
        chosen: list[dict[str, str]] = []
        for label in self.labels:
            pool = [e for e in examples if str(e["label"]) == label]
            if len(pool) < k:
                raise DataError(
                    f"{origin}: method.demonstrations: {k}: label {label!r} has only "
                    f"{len(pool)} training examples → lower method.demonstrations"
                )
            chosen += [{"text": e["text"], "label": label} for e in rng.sample(pool, k)]
        rng.shuffle(chosen)
        return chosen

    def state(self) -> dict[str, Any]:
        """Labels plus what prompting resolved (saved in the run, part of the encoding key)."""
        template = self.plan.rendered if self.plan is not None else None
        return {
            **self.base.state(),
            "prompt": {
                "architecture": self.architecture,
                "scoring": self.scoring,
                "demonstrations": self.demonstrations,
                "verbalizer": dict(
                    zip(
                        self.labels,
                        prompt_plan.verbalizer(self.labels, self.prompt.verbalizer),
                        strict=True,
                    )
                )
                if self.labels
                else {},
                "rendered": list(template) if template else None,
                "calibrate": self.calibrate,
                # only when used, so the encoding key of other runs stays as it was
                **({"calibration_texts": self.calibration_texts} if self.batch_calibration else {}),
            },
        }

    # ----------------------------------------------------------------------------- model
    def auto_class(self) -> Any:
        """``AutoModelForMaskedLM`` (encoders) or ``AutoModelForCausalLM`` (decoders)."""
        import transformers

        if self.architecture == "decoder":
            return transformers.AutoModelForCausalLM
        return transformers.AutoModelForMaskedLM

    def model_kwargs(self) -> dict[str, Any]:
        """None: the LM head comes with the model class."""
        return {}

    def bind(self, model_type: str, tokenizer: Any) -> None:
        """Resolve encoder/decoder and scoring; tokenise the template and the verbaliser."""
        if not self.architecture:
            self.architecture = "encoder" if objective_for(model_type) == "mlm" else "decoder"
        decoder = self.architecture == "decoder"
        if decoder and not self.scoring:
            self.scoring = "label_likelihood"
        if decoder and self.scoring != "label_likelihood":
            raise ConfigError(
                f"method.scoring: {self.scoring!r}: the model is a decoder → use scoring "
                "label_likelihood (or auto)"
            )
        if not decoder and self.scoring == "label_likelihood":
            raise ConfigError(
                "method.scoring: 'label_likelihood': the model is an encoder → use cloze, "
                "cloze_embeddings, similarity or auto"
            )
        if not decoder and (self.prompt.mode == "in_context" or self.prompt.instruction):
            raise ConfigError(
                "method: prompting: mode in_context and instruction are for decoders → use "
                "mode finetune or zero_shot with an encoder, or a decoder model"
            )
        words = prompt_plan.verbalizer(self.labels, self.prompt.verbalizer)
        if decoder:
            demos = [(d["text"], self.labels.index(d["label"])) for d in self.demonstrations]
            self.plan = prompt_plan.decoder_plan(
                tokenizer,
                self.prompt.template or prompt_plan.DECODER_TEMPLATE,
                self.prompt.instruction or prompt_plan.DECODER_INSTRUCTION,
                words,
                demos,
            )
        else:
            template = self.prompt.template or prompt_plan.ENCODER_TEMPLATE
            if not self.scoring and prompt_plan.PROMPT_MASK not in template:
                self.scoring = "similarity"  # auto without a mask: nothing to cloze
            # similarity pools whole texts: each verbaliser word as a text of its own
            self.plan = prompt_plan.encoder_plan(tokenizer, template, words, cloze=False)
            self.plan.extra["texts"] = self.plan.words
            if self.scoring != "similarity":
                try:
                    cloze = prompt_plan.encoder_plan(tokenizer, template, words, cloze=True)
                except ConfigError as exc:
                    if self.scoring:
                        raise
                    self._cloze_error = exc  # raised only if auto picks cloze
                else:
                    cloze.extra["texts"] = self.plan.words
                    self.plan = cloze
        self.mask_id = tokenizer.mask_token_id
        self._tokenizer = tokenizer

    def on_model_loaded(self, model: torch.nn.Module, missing: set[str]) -> None:
        """Resolve ``scoring: auto`` for encoders: cloze when the checkpoint had its MLM head.

        MiniLM's checkpoint has none (its head starts random), and the [MASK] state of its
        encoder carries no cloze signal either: similarity scoring is what works there
        (measured in docs/prompting.md).
        """
        if self.scoring:
            return
        head = [n for n, _ in model.named_parameters() if n.split(".")[0] in ("cls", "lm_head")]
        fresh = bool(head) and any(n in missing for n in head)
        self.scoring = "similarity" if fresh else "cloze"
        if self.scoring == "cloze" and self._cloze_error is not None:
            raise self._cloze_error

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module that scores the labels: (B, C) logits from a padded batch of prompts."""
        from domaintune.models import prompt_scorers

        if self.plan is None or not self.scoring:
            raise RuntimeError("bind() and on_model_loaded() must run before wrap()")
        calibration = self._calibration_rows() if self.calibrate else None
        mean_probability = self.batch_calibration
        plan = self.plan
        if self.scoring == "label_likelihood":
            return prompt_scorers.LabelLikelihoodScorer(
                model,
                plan.words,
                plan.owner,
                self.prompt.length_normalize,
                calibration,
                prefix=plan.lead + plan.before,
                mean_probability=mean_probability,
            )
        if self.scoring == "similarity":
            return prompt_scorers.SimilarityScorer(
                model,
                plan.extra["texts"],
                plan.owner,
                self.prompt.similarity_scale,
                calibration,
                mean_probability,
            )
        assert self.mask_id is not None
        groups: list[list[int]] = [[] for _ in self.labels]
        for word, label in zip(plan.words, plan.owner, strict=True):
            groups[label].append(word[0])
        return prompt_scorers.ClozeScorer(
            model, groups, self.mask_id, self.scoring == "cloze", calibration, mean_probability
        )

    def _calibration_rows(self) -> torch.Tensor:
        """Calibration prompts (R, T) with -1 padding: content-free or training texts."""
        from domaintune.models import prompt_scorers

        assert self.plan is not None
        if self.batch_calibration and not self.calibration_texts:
            raise RuntimeError("fit_labels() must draw the calibration texts before wrap()")
        texts = self.calibration_texts if self.batch_calibration else prompt_plan.CONTENT_FREE
        rows = prompt_plan.encode_texts(
            self.plan, self._tokenizer, list(texts), self._max_length, "calibration"
        )
        return prompt_scorers.padded([[int(i) for i in row] for row in rows])

    # -------------------------------------------------------------------------- encoding
    def encode(self, examples: list[Example], tokenizer: Any, max_length: int) -> Encoded:
        """Every text inside the template; label ids when the examples have labels."""
        if self.plan is None:
            raise RuntimeError("bind() must run before encode()")
        self._max_length = max_length  # calibration prompts are cut like the data's
        where = (
            f"{len(self.demonstrations)} demonstrations"
            if self.demonstrations
            else "template and instruction"
        )
        ids = prompt_plan.encode_texts(
            self.plan, tokenizer, [e["text"] for e in examples], max_length, where
        )
        features: dict[str, list[np.ndarray]] = {"input_ids": ids}
        if examples and "label" in examples[0]:
            index = {name: i for i, name in enumerate(self.labels)}
            features["labels"] = [
                np.asarray([index[str(e["label"])]], dtype=np.int64) for e in examples
            ]
        return Encoded(features)

    def collate(
        self, features: dict[str, list[np.ndarray]], pad_token_id: int, training: bool = False
    ) -> dict[str, torch.Tensor]:
        """Right-padded prompts and label ids (the classification task's collator)."""
        return self.base.collate(features, pad_token_id, training)

    # ------------------------------------------------- loss, outputs, metrics: unchanged
    def loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy over the labels' scores (PET's loss), summed, and the example count."""
        return self.base.loss(logits, batch)

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Label probabilities (softmax over the labels' scores)."""
        return self.base.outputs(logits, batch)

    def metrics(
        self,
        outputs: list[np.ndarray],
        examples: list[Example],
        tune: bool = False,
        encoded: Encoded | None = None,
    ) -> dict[str, Any]:
        """The classification metrics."""
        return self.base.metrics(outputs, examples, tune, encoded)

    def format_predictions(
        self, outputs: list[np.ndarray], examples: list[Example], encoded: Encoded, tokenizer: Any
    ) -> list[dict[str, Any]]:
        """``{"text", "label", "probabilities"}`` per example."""
        return self.base.format_predictions(outputs, examples, encoded, tokenizer)
