"""Text generation: SFT of decoders on instruction/chat data, and seq2seq (T5/BART) training.

Decoders (``AutoModelForCausalLM``) learn the output tokens only: assistant turns rendered with
the chat template (``data/chat.py``), or the completion and an EOS; short training examples
are packed into rows without seeing each other (``data/packing.py``). Encoder-decoders
(``AutoModelForSeq2SeqLM``) learn the target tokens. Both project only the target positions
onto the vocabulary. Evaluation during training is perplexity on the reference tokens; the
final evaluation also generates text (``tasks/generate.py``), scores it
(``evaluation/generation_metrics.py``) and writes ``predictions-<split>.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domaintune.config.generation import GenerationTaskConfig
from domaintune.data.chat import ChatRenderer, encode_decoder
from domaintune.data.collate import pad_feature, pad_inputs
from domaintune.data.encode import Encoded
from domaintune.data.instructions import reference_text, source_text
from domaintune.data.packing import collate_packed, collate_padded
from domaintune.data.pipeline import RawSplits
from domaintune.data.readers import Example, Kind
from domaintune.errors import DataError, RunError
from domaintune.evaluation.generation_metrics import generation_metrics
from domaintune.tasks.language_modeling import (
    perplexity_metrics,
    row_cross_entropy,
    summed_cross_entropy,
)


class GenerationTask:
    """Supervised fine-tuning for generation, scored by perplexity and generation metrics."""

    kind: Kind = "gen"
    default_metric = "perplexity"

    def __init__(self, cfg: GenerationTaskConfig, state: dict[str, Any] | None = None) -> None:
        """Create the task; ``state`` (from a saved run) fixes the architecture."""
        self.cfg = cfg
        self.architecture: str = (state or {}).get("architecture", "")
        self.renderer: ChatRenderer | None = None
        self.packing_ok: bool | None = None  # decided by wrap() for decoders

    # ---------------------------------------------------------------------------- labels
    def fit_labels(self, raw: RawSplits) -> None:
        """Check every example is of ``task.format`` (any format with ``auto``)."""
        if self.cfg.format == "auto":
            return
        for split, examples in raw.splits.items():
            for i, example in enumerate(examples):
                if example.get("format") != self.cfg.format:
                    raise DataError(
                        f"{raw.origins.get(split, split)}: example {i + 1} is "
                        f"{example.get('format')} data but task.format is {self.cfg.format!r} "
                        "→ set task.format: auto or fix the rows"
                    )

    def state(self) -> dict[str, Any]:
        """What encoding depends on: architecture, chat template (a hash), target length."""
        template = self.renderer.template if self.renderer is not None else ""
        return {
            "architecture": self.architecture,
            "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest()[:16],
            "max_target_length": self.cfg.max_target_length,
        }

    # ----------------------------------------------------------------------------- model
    @property
    def encoder_decoder(self) -> bool:
        """True for T5/BART-style models."""
        return self.architecture == "seq2seq"

    def auto_class(self) -> Any:
        """``AutoModelForSeq2SeqLM`` or ``AutoModelForCausalLM``."""
        import transformers

        if self.encoder_decoder:
            return transformers.AutoModelForSeq2SeqLM
        return transformers.AutoModelForCausalLM

    def model_kwargs(self) -> dict[str, Any]:
        """No extra arguments: the LM head comes with the model class."""
        return {}

    def bind(self, model_type: str, tokenizer: Any) -> None:
        """Tell decoders from encoder-decoders; choose the chat template."""
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES as SEQ2SEQ,
        )

        if not self.architecture:
            self.architecture = "seq2seq" if model_type in SEQ2SEQ else "decoder"
        self.renderer = ChatRenderer(tokenizer, self.cfg.chat_template)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the loop trains: logits at the target positions only."""
        if self.encoder_decoder:
            from domaintune.models.seq2seq import Seq2SeqTargets

            return Seq2SeqTargets(model)
        from domaintune.models.lm import TargetPositionsLM, keeps_packed_examples_apart

        if self.cfg.packing and self.packing_ok is None:
            self.packing_ok = keeps_packed_examples_apart(model)
            if not self.packing_ok:
                warnings.warn(
                    f"task.packing: {type(model).__name__} does not keep packed examples apart "
                    "(no block-diagonal attention from position ids): training batches are "
                    "padded instead",
                    stacklevel=2,
                )
        return TargetPositionsLM(model, "clm")

    # -------------------------------------------------------------------------- encoding
    def encode(self, examples: list[Example], tokenizer: Any, max_length: int) -> Encoded:
        """Token ids with a loss mask (decoders) or source and target ids (encoder-decoders)."""
        if not examples:
            return Encoded({"input_ids": []})
        if not self.encoder_decoder:
            assert self.renderer is not None, "bind() must run before encode()"
            return encode_decoder(examples, tokenizer, self.renderer, max_length)
        sources = tokenizer(
            [source_text(e) for e in examples], truncation=True, max_length=max_length
        )["input_ids"]
        targets = tokenizer(
            text_target=[reference_text(e) or "" for e in examples],
            truncation=True,
            max_length=self.cfg.max_target_length or max_length,
        )["input_ids"]
        return Encoded(
            {
                "input_ids": [np.asarray(s, dtype=np.int32) for s in sources],
                "target_ids": [np.asarray(t, dtype=np.int32) for t in targets],
            }
        )

    def collate(
        self, features: dict[str, list[np.ndarray]], pad_token_id: int, training: bool = False
    ) -> dict[str, torch.Tensor]:
        """Model inputs, flat ``target_positions`` and their ``labels`` (packed when training)."""
        if not self.encoder_decoder:
            if training and self.cfg.packing and self.packing_ok:
                return collate_packed(features, pad_token_id, self.cfg.pack_length or 0)
            return collate_padded(features, pad_token_id)
        batch = pad_inputs({"input_ids": features["input_ids"]}, pad_token_id)
        targets = pad_feature(features["target_ids"], -100).long()  # (B, T)
        positions = (targets != -100).reshape(-1).nonzero().squeeze(1)  # (N,)
        batch.update(
            target_ids=targets, target_positions=positions, labels=targets.reshape(-1)[positions]
        )
        return batch

    # ------------------------------------------------------------------------------ loss
    def loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy over the target tokens, and their count."""
        return summed_cross_entropy(logits, batch["labels"])

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per example: ``[summed cross-entropy, number of target tokens]``."""
        grid = batch.get("target_ids", batch["input_ids"])  # (B, T): what positions index
        return row_cross_entropy(logits, batch["labels"], batch["target_positions"], grid)

    def metrics(
        self,
        outputs: list[np.ndarray],
        examples: list[Example],
        tune: bool = False,
        encoded: Encoded | None = None,
    ) -> dict[str, Any]:
        """Perplexity over the reference tokens (the cheap metric the loop selects on)."""
        scores = perplexity_metrics(outputs)
        if outputs and not scores["targets"]:
            raise DataError(
                f"no output tokens within data.max_length in the {len(outputs)} examples "
                "scored (the prompt, with the chat template's system prompt, fills it) → "
                "raise data.max_length"
            )
        return scores

    def format_predictions(
        self, outputs: list[np.ndarray], examples: list[Example], encoded: Encoded, tokenizer: Any
    ) -> list[dict[str, Any]]:
        """Not supported: batch prediction runs on logits, generation needs ``generate``."""
        raise RunError(
            "predict: a generation run generates at its final evaluation (RUN/predictions-"
            "<split>.jsonl) → put the inputs in data.test and run it, or load RUN/final with "
            "transformers and call generate"
        )

    # ------------------------------------------------------------------------ generation
    def prompt_ids(self, example: Example, tokenizer: Any, max_length: int) -> list[int]:
        """Token ids of the text the model continues (the last ``max_length`` for decoders)."""
        if self.encoder_decoder:
            ids = tokenizer(source_text(example), truncation=True, max_length=max_length)
            return list(ids["input_ids"])
        assert self.renderer is not None, "bind() must run first"
        if "messages" in example:
            text, special = self.renderer.prompt(example), False
        else:
            text, special = example["prompt"], True
        return list(tokenizer(text, add_special_tokens=special)["input_ids"][-max_length:])

    def generation_scores(
        self,
        model: torch.nn.Module,
        split: str,
        examples: list[Example],
        tokenizer: Any,
        max_length: int,
        batch_size: int,
        accelerator: Any,
        run_dir: Path,
    ) -> dict[str, Any]:
        """The final evaluation's generation metrics of a split in ``task.generate_splits``."""
        if split not in self.cfg.generate_splits:
            return {}
        out = run_dir / f"predictions-{split}.jsonl"
        return self.generate_and_score(
            model, examples, tokenizer, max_length, batch_size, accelerator, out
        )

    def generate_and_score(
        self,
        model: torch.nn.Module,
        examples: list[Example],
        tokenizer: Any,
        max_length: int,
        batch_size: int,
        accelerator: Any,
        out: Path,
    ) -> dict[str, Any]:
        """Generate for ``max_generate`` examples at most, score, write the predictions.

        Returns the generation metrics (empty when no metric needs text). On the main process
        (or without an ``accelerator``), the JSONL file ``out`` gets ``prompt`` (the input as
        plain text), ``reference`` and ``prediction`` per example.
        """
        if not self.cfg.generates or not examples:
            return {}
        from domaintune.tasks.generate import generate_texts

        chosen = examples[: self.cfg.max_generate]
        predictions = generate_texts(
            model,
            tokenizer,
            [self.prompt_ids(e, tokenizer, max_length) for e in chosen],
            self.cfg.decoding,
            encoder_decoder=self.encoder_decoder,
            batch_size=batch_size,
            device=accelerator.device if accelerator else next(model.parameters()).device,
            accelerator=accelerator,
        )
        references = [reference_text(e) or "" for e in chosen]
        scores = generation_metrics(predictions, references, list(self.cfg.metrics))
        if accelerator is None or accelerator.is_main_process:
            rows = [
                {"prompt": source_text(e), "reference": r, "prediction": p}
                for e, r, p in zip(chosen, references, predictions, strict=True)
            ]
            out.write_text(
                "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                encoding="utf-8",
            )
        return scores
