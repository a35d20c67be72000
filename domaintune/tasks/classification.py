"""Sequence classification: single-label (cross-entropy), multi-label (BCE), regression (MSE)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from domaintune.config.sections import ClassificationTaskConfig
from domaintune.data.collate import pad_inputs
from domaintune.data.encode import Encoded
from domaintune.data.knowledge import facts_that_fit
from domaintune.data.labels import build_label_list, check_known_labels, split_multi_label
from domaintune.data.pipeline import RawSplits
from domaintune.data.readers import Example
from domaintune.errors import DataError
from domaintune.evaluation.metrics import (
    classification_metrics,
    multi_label_metrics,
    regression_metrics,
    tune_threshold,
)


class ClassificationTask:
    """Classify (or score) whole texts or text pairs."""

    kind = "text"

    def __init__(self, cfg: ClassificationTaskConfig, state: dict[str, Any] | None = None) -> None:
        """Create the task from its config section (and saved state when reloading a run)."""
        self.cfg = cfg
        self.labels: list[str] = list((state or {}).get("labels", []))
        saved = (state or {}).get("threshold")
        self.threshold: float = cfg.threshold if cfg.threshold is not None else (saved or 0.5)
        self.default_metric = {
            "single_label": "f1_macro",
            "multi_label": "f1_micro",
            "regression": "mse",
        }[cfg.problem]

    # ---------------------------------------------------------------------------- labels
    def fit_labels(self, raw: RawSplits) -> None:
        """Build the label list from train and reject unknown labels elsewhere."""
        if self.cfg.problem == "regression":
            for name, examples in raw.splits.items():
                for i, example in enumerate(examples):
                    try:
                        example["label"] = float(example["label"])
                    except (TypeError, ValueError):
                        raise DataError(
                            f"{raw.origins[name]}: example {i + 1}: label "
                            f"{example['label']!r} is not a number → regression "
                            "needs numeric labels"
                        ) from None
            self.labels = ["score"]
            return
        per_split = {name: self._label_names(examples) for name, examples in raw.splits.items()}
        train = [label for names in per_split["train"] for label in names]
        self.labels = build_label_list(train)
        if self.cfg.problem == "single_label" and len(self.labels) < 2:
            raise DataError(
                f"{raw.origins['train']}: only one label ({self.labels}) in the "
                "training split → classification needs two labels at least"
            )
        for name, names in per_split.items():
            if name != "train":
                flat = [label for group in names for label in group]
                check_known_labels(flat, self.labels, name, raw.origins[name])

    def _label_names(self, examples: list[Example]) -> list[list[str]]:
        if self.cfg.problem == "multi_label":
            return [split_multi_label(e["label"], self.cfg.label_separator) for e in examples]
        return [[str(e["label"])] for e in examples]

    def state(self) -> dict[str, Any]:
        """Labels and the multi-label threshold."""
        return {"labels": self.labels, "threshold": self.threshold}

    # ----------------------------------------------------------------------------- model
    def auto_class(self) -> Any:
        """``AutoModelForSequenceClassification``."""
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def model_kwargs(self) -> dict[str, Any]:
        """Head size and label names."""
        problem = {
            "single_label": "single_label_classification",
            "multi_label": "multi_label_classification",
            "regression": "regression",
        }[self.cfg.problem]
        return {
            "num_labels": len(self.labels),
            "id2label": dict(enumerate(self.labels)),
            "label2id": {label: i for i, label in enumerate(self.labels)},
            "problem_type": problem,
        }

    # -------------------------------------------------------------------------- encoding
    def bind(self, model_type: str, tokenizer: Any) -> None:
        """Nothing to learn from the model or tokenizer."""

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model itself: its own forward gives the logits this task needs."""
        return model

    def encode(self, examples: list[Example], tokenizer: Any, max_length: int) -> Encoded:
        """Tokenise texts (and pairs) in one fast-tokenizer call; attach label arrays.

        Attached knowledge (``data/knowledge.py``): the facts that fit in ``max_length`` form
        the second segment, or follow the pair's second text; the text itself is never cut
        for them.
        """
        texts = [e["text"] for e in examples]
        pairs = (
            [e.get("text_pair", "") for e in examples]
            if examples and "text_pair" in examples[0]
            else None
        )
        enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
        extra = (
            0
            if pairs is not None
            else tokenizer.num_special_tokens_to_add(pair=True)
            - (tokenizer.num_special_tokens_to_add())
        )
        used = [len(ids) for ids in enc["input_ids"]]
        facts = facts_that_fit(tokenizer, examples, used, max_length, extra)
        paired = [i for i, f in enumerate(facts) if f]
        if paired:  # only the examples with facts are tokenised again, as pairs
            seconds = [
                " ".join(filter(None, (pairs[i] if pairs else "", facts[i]))) for i in paired
            ]
            fitted = tokenizer(
                [texts[i] for i in paired], seconds, truncation="only_second", max_length=max_length
            )
            for key in enc:
                for j, i in enumerate(paired):
                    enc[key][i] = fitted[key][j]
        features: dict[str, list[np.ndarray]] = {
            "input_ids": [np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"]]
        }
        if "token_type_ids" in enc:
            features["token_type_ids"] = [
                np.asarray(t, dtype=np.int8) for t in enc["token_type_ids"]
            ]
        if examples and "label" in examples[0]:
            features["labels"] = [self._label_array(e["label"]) for e in examples]
        return Encoded(features)

    def _label_array(self, label: Any) -> np.ndarray:
        if self.cfg.problem == "regression":
            return np.asarray([float(label)], dtype=np.float32)
        index = {name: i for i, name in enumerate(self.labels)}
        if self.cfg.problem == "multi_label":
            hot = np.zeros(len(self.labels), dtype=np.float32)
            for name in split_multi_label(label, self.cfg.label_separator):
                hot[index[name]] = 1.0
            return hot
        return np.asarray([index[str(label)]], dtype=np.int64)

    def collate(
        self, features: dict[str, list[np.ndarray]], pad_token_id: int, training: bool = False
    ) -> dict[str, torch.Tensor]:
        """Pad inputs; stack labels to (B,) ids, (B, L) multi-hot or (B,) scores."""
        batch = pad_inputs(features, pad_token_id)
        if "labels" in features:
            labels = torch.from_numpy(np.stack(features["labels"]))  # (B, 1) or (B, L)
            batch["labels"] = labels if self.cfg.problem == "multi_label" else labels[:, 0]
        return batch

    # ------------------------------------------------------------------------------ loss
    def loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss and its item count (examples, or example×label cells for BCE)."""
        labels = batch["labels"]
        if self.cfg.problem == "single_label":
            total = F.cross_entropy(logits.float(), labels, reduction="sum")
            count = labels.numel()
        elif self.cfg.problem == "multi_label":
            total = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="sum")
            count = labels.numel()
        else:
            total = F.mse_loss(logits.float()[:, 0], labels, reduction="sum")
            count = labels.numel()
        return total, torch.tensor(float(count), device=logits.device)

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Probabilities (softmax or sigmoid) or the regression value, one array per example."""
        logits = logits.float()
        if self.cfg.problem == "single_label":
            values = torch.softmax(logits, dim=-1)
        elif self.cfg.problem == "multi_label":
            values = torch.sigmoid(logits)
        else:
            values = logits[:, :1]
        return list(values.cpu().numpy())

    # --------------------------------------------------------------------------- metrics
    def metrics(
        self,
        outputs: list[np.ndarray],
        examples: list[Example],
        tune: bool = False,
        encoded: Encoded | None = None,
    ) -> dict[str, Any]:
        """Classification, multi-label or regression metrics against gold labels."""
        gold = [self._label_array(e["label"]) for e in examples]
        if self.cfg.problem == "regression":
            return regression_metrics(np.concatenate(gold), np.concatenate(outputs))
        if self.cfg.problem == "multi_label":
            hot, probs = np.stack(gold).astype(int), np.stack(outputs)
            if tune and self.cfg.threshold is None:
                self.threshold = tune_threshold(hot, probs)
            return multi_label_metrics(hot, probs, self.threshold, self.labels)
        y_true = [int(g[0]) for g in gold]
        y_pred = [int(np.argmax(o)) for o in outputs]
        return classification_metrics(y_true, y_pred, self.labels)

    def format_predictions(
        self, outputs: list[np.ndarray], examples: list[Example], encoded: Encoded, tokenizer: Any
    ) -> list[dict[str, Any]]:
        """``{"text", "label"/"labels"/"score", "probabilities"}`` per example."""
        rows = []
        for example, out in zip(examples, outputs, strict=True):
            row: dict[str, Any] = {"text": example["text"]}
            if self.cfg.problem == "regression":
                row["score"] = float(out[0])
            else:
                probs = {
                    label: round(float(p), 6) for label, p in zip(self.labels, out, strict=True)
                }
                if self.cfg.problem == "multi_label":
                    row["labels"] = [k for k, p in probs.items() if p >= self.threshold]
                else:
                    row["label"] = self.labels[int(np.argmax(out))]
                row["probabilities"] = probs
            rows.append(row)
        return rows
