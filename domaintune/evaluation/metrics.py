"""Metrics from scikit-learn, scipy and seqeval (strict IOB2 for entities)."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(
    y_true: list[int], y_pred: list[int], labels: list[str]
) -> dict[str, Any]:
    """Accuracy, micro/macro/weighted P/R/F1, a per-label table and the confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    ids = list(range(len(labels)))
    out: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=ids, average=average, zero_division=0
        )
        out[f"precision_{average}"] = float(p)
        out[f"recall_{average}"] = float(r)
        out[f"f1_{average}"] = float(f)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, average=None, zero_division=0
    )
    out["per_label"] = {
        label: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, label in enumerate(labels)
    }
    out["confusion_matrix"] = {
        "labels": labels,
        "matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }
    return out


def multi_label_metrics(
    y_true: np.ndarray, probs: np.ndarray, threshold: float, labels: list[str]
) -> dict[str, Any]:
    """Micro/macro F1, subset accuracy and per-label F1 at a decision threshold."""
    from sklearn.metrics import accuracy_score, f1_score

    y_pred = (probs >= threshold).astype(int)
    per = f1_score(y_true, y_pred, average=None, zero_division=0)
    return {
        "f1_micro": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "threshold": float(threshold),
        "per_label": {label: {"f1": float(per[i])} for i, label in enumerate(labels)},
    }


def tune_threshold(y_true: np.ndarray, probs: np.ndarray) -> float:
    """The threshold in 0.05..0.95 that maximises micro-F1 (ties go to the value nearest 0.5)."""
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    scores = [
        f1_score(y_true, (probs >= t).astype(int), average="micro", zero_division=0) for t in grid
    ]
    best = max(scores)
    candidates = [t for t, s in zip(grid, scores, strict=True) if s == best]
    return float(min(candidates, key=lambda t: abs(t - 0.5)))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """MSE, MAE, Pearson and Spearman correlation."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    constant = np.ptp(y_true) == 0 or np.ptp(y_pred) == 0
    return {
        "mse": float(mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "pearson": 0.0 if constant else float(pearsonr(y_true, y_pred)[0]),
        "spearman": 0.0 if constant else float(spearmanr(y_true, y_pred)[0]),
    }


def entity_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Entity-level P/R/F1, overall and per type, with seqeval in strict IOB2 mode.

    Strict mode counts an entity only when its type and both boundaries match and its tags are
    well-formed IOB2; seqeval's default (conlleval-like) mode is about 1 F1 point more lenient.
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(
        gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    per_type = {
        name: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for name, v in report.items()
        if not name.endswith(" avg")
    }
    return {
        "entity_precision": float(micro["precision"]),
        "entity_recall": float(micro["recall"]),
        "entity_f1": float(micro["f1-score"]),
        "per_type": per_type,
        "scheme": "IOB2 strict (seqeval)",
    }


LOWER_IS_BETTER = {"mse", "mae", "loss", "perplexity"}


def greater_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better."""
    return metric not in LOWER_IS_BETTER and not metric.endswith("loss")
