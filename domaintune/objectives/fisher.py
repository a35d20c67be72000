"""The diagonal Fisher information of a model on a task's data, and its file.

Which Fisher: the **true** Fisher by default, ``E_x E_{y~p(y|x)} [(d log p(y|x) / d theta)^2]``,
with one label sampled from the model's own prediction per example (per word for a softmax
tagging head, one whole tag sequence from the CRF's distribution for ``head: crf``), as
Kirkpatrick et al. (2017) define it; the empirical Fisher (gold labels) is an option, and the
only one for multi-label and regression heads, but it measures how well the model fits the
labels rather than its curvature (Kunstner et al., 2019).
Squared gradients are taken **per example**, not per batch: the square of a batch-mean gradient
is the square of a sum, whose cross terms make it a different (much smaller) quantity.
An example's log-likelihood is the sum over its words, the task loss before normalisation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domaintune.data.encode import Encoded
from domaintune.errors import ConfigError
from domaintune.models.crf import CRF, compact, expand, prefix_mask
from domaintune.tasks.inference import model_inputs

FISHER_FILE = "fisher.safetensors"
IGNORE = -100


def estimate_fisher(
    model: nn.Module,
    task: Any,
    data: Encoded,
    params: dict[str, nn.Parameter],
    *,
    estimator: str = "true",
    samples: int = 1000,
    seed: int = 0,
    pad_token_id: int = 0,
) -> dict[str, torch.Tensor]:
    """Mean over up to ``samples`` examples of each example's squared log-likelihood gradient.

    One backward per example: ``torch.func.vmap`` over transformers models breaks on their
    data-dependent masking code, and 1,000 short sentences take well under a minute on MiniLM.
    The model runs in eval mode (no dropout): the Fisher of the model that will be anchored.
    """
    if estimator == "true" and not _can_sample(task):
        raise ConfigError(
            "objectives: ewc: estimator 'true' samples labels from the model's distribution, "
            "which this task's head lacks (multi-label or regression) → set estimator: empirical"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)[:samples].tolist()
    module = task.wrap(model)
    was_training = module.training
    module.eval()
    device = next(model.parameters()).device
    names, tensors = list(params), list(params.values())
    fisher = [torch.zeros_like(p, dtype=torch.float32) for p in tensors]
    for index in order:
        batch = task.collate(data.subset([index]).features, pad_token_id, training=True)
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = module(**model_inputs(batch)).logits  # (1, C) or (1, T, C)
        if estimator == "true":
            crf = getattr(task, "crf", None)
            batch["labels"] = (
                sample_labels(logits, batch["labels"], generator)
                if crf is None
                else sample_crf_labels(crf, logits, batch["labels"], generator)
            )
        total, _ = task.loss(logits, batch)  # -log p(y|x), summed over the example's words
        grads = torch.autograd.grad(total, tensors, allow_unused=True)
        for f, g in zip(fisher, grads, strict=True):
            if g is not None:
                f += g.detach().float() ** 2
    module.train(was_training)
    return {n: f / max(1, len(order)) for n, f in zip(names, fisher, strict=True)}


def sample_labels(
    logits: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Labels drawn from the model's softmax where ``labels`` is set (not -100)."""
    probs = torch.softmax(logits.detach().float().cpu(), dim=-1)  # (..., C)
    drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    drawn = drawn.reshape(labels.shape).to(labels.device)
    return torch.where(labels == IGNORE, labels, drawn)


def sample_crf_labels(
    crf: CRF, logits: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Tag sequences drawn from the CRF's ``p(tags | x)`` over the tagged words (not -100)."""
    tagged = labels != IGNORE  # (B, T)
    path = crf.sample(compact(logits, tagged), prefix_mask(tagged), generator)  # (B, W)
    return expand(path, tagged, fill=IGNORE).to(labels.dtype)


def save_fisher(path: Path, fisher: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write the Fisher (by base parameter name) with what produced it in the metadata."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file(
        {k: v.contiguous().cpu() for k, v in fisher.items()},
        str(tmp),
        {"domaintune": json.dumps(meta)},
    )
    tmp.replace(path)


def load_fisher(source: str | Path) -> dict[str, torch.Tensor]:
    """The Fisher saved by an EWC run (a run folder or the file itself)."""
    from safetensors.torch import load_file

    path = Path(source).expanduser()
    if path.is_dir():
        path = path / FISHER_FILE
    if not path.is_file():
        raise ConfigError(
            f"objectives: ewc: fisher_from: {str(source)!r}: no {FISHER_FILE} there → point "
            "it at the folder of a run trained with the ewc objective, or estimate it with data"
        )
    return dict(load_file(str(path)))


def fit_shape(fisher: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """A saved Fisher for a head that has since grown: zeros (no protection) for the new rows."""
    if fisher.shape == param.shape:
        return fisher
    if fisher.shape[1:] == param.shape[1:] and fisher.shape[0] < param.shape[0]:
        grown = torch.zeros(param.shape, dtype=fisher.dtype)
        grown[: fisher.shape[0]] = fisher
        return grown
    raise ConfigError(
        f"objectives: ewc: fisher_from: shape {tuple(fisher.shape)} does not fit the parameter "
        f"{tuple(param.shape)} → load a Fisher of the model this stage starts from"
    )


def _can_sample(task: Any) -> bool:
    if task.kind == "tokens":
        return True  # a softmax per word, or the CRF's sequence distribution
    return task.kind == "text" and getattr(task.cfg, "problem", "") == "single_label"
