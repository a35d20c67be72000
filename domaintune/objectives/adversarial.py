"""Adversarial training on the input embeddings: FGM (Miyato et al. 2017) and PGD (Madry et al.).

PGD is Madry et al. (2018) as used for NLP by Zhu et al. (2020, FreeLB) and others.

The perturbation is added to the word-embedding output (a forward hook on
``model.get_input_embeddings()``), so it works when the embedding table is frozen (LoRA).
The loop calls ``loss`` after the clean forward and adds what it returns before its one backward.
The perturbation is computed from the gradient of the clean loss with respect to the
embeddings, taken with ``torch.autograd.grad`` and treated as a constant; that gives the same
parameter gradients as the classic "backward clean, perturb, forward + backward adversarial,
restore" recipe (tests/unit/objectives/test_adversarial.py checks it).
No library (TextAttack, advertorch) perturbs embeddings inside a loop we own; the maths is a few
lines.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from domaintune.config.objectives import FGMConfig, PGDConfig
from domaintune.objectives.capture import first_forward
from domaintune.objectives.protocol import ObjectiveContext
from domaintune.tasks.inference import model_inputs


class EmbeddingPerturbation:
    """A forward hook that adds a perturbation leaf to the word embeddings of training forwards.

    Each training forward (module in train mode, gradients on) gets ``output + delta``, where
    ``delta`` is a fresh leaf (zeros, or ``fixed`` when set) whose gradient is the gradient with
    respect to the embeddings; ``(input ids, delta)`` is remembered so that ``loss`` finds the
    leaf of the loop's clean forward among other forwards (another objective's, say).
    """

    def __init__(self, module: nn.Module) -> None:
        """Hook ``module`` (the input embedding table)."""
        self.fixed: torch.Tensor | None = None
        self.seen: list[tuple[Any, torch.Tensor]] = []
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> Any:
        if not (module.training and torch.is_grad_enabled()):
            return None  # evaluation and inference are untouched
        start = self.fixed if self.fixed is not None else torch.zeros_like(output)
        delta = start.detach().to(output.dtype).requires_grad_()  # (B, T, H)
        self.seen.append((args[0] if args else None, delta))
        return output + delta

    def take(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The leaf of the first forward on ``input_ids`` since the last call; forget the rest."""
        seen, self.seen = self.seen, []
        return first_forward(seen, input_ids)


def unit_per_example(grad: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``g / ||g||`` per example over its real tokens (zero where the gradient is zero)."""
    if mask is not None:
        grad = grad * mask[..., None].to(grad.dtype)  # (B, T, H): padding is never perturbed
    norm = grad.flatten(1).norm(dim=1)  # (B,)
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    return torch.where(norm[:, None, None] > 0, grad / safe[:, None, None], torch.zeros_like(grad))


def project_per_example(r: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``r`` scaled back onto the L2 ball of radius ``epsilon``, example by example."""
    norm = r.flatten(1).norm(dim=1)  # (B,)
    factor = torch.clamp(epsilon / norm.clamp(min=1e-12), max=1.0)
    return r * factor[:, None, None]


class EmbeddingAdversary:
    """FGM and PGD: ``steps`` normalised ascent steps of length ``alpha`` inside an L2 ball.

    FGM is one step with ``alpha = epsilon``. The adversarial loss is the task's summed loss
    times the factor the loop applies to the clean loss (``on_loss_scale``), so it is
    normalised over the global batch like the task loss.
    """

    def __init__(self, epsilon: float, alpha: float, steps: int, weight: float) -> None:
        """Store the attack's knobs; the hook is installed in ``setup``."""
        self.epsilon, self.alpha, self.steps, self.weight = epsilon, alpha, steps, weight
        self.hook: EmbeddingPerturbation | None = None
        self.task: Any = None
        self.accelerator: Any = None
        self.scale: torch.Tensor | float | None = None

    def setup(self, ctx: ObjectiveContext) -> None:
        """Hook the model's input embeddings; keep the task (its loss) and the accelerator."""
        self.task, self.accelerator = ctx.task, ctx.accelerator
        embeddings: nn.Module = ctx.model.get_input_embeddings()  # type: ignore[operator]
        self.hook = EmbeddingPerturbation(embeddings)

    def on_loss_scale(self, scale: torch.Tensor) -> None:
        """The loop's factor for this micro-batch's summed task loss (global-batch mean)."""
        self.scale = scale

    def loss(self, model: nn.Module, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        """``weight`` x the scaled task loss at the final perturbation (a scalar)."""
        assert self.hook is not None, "setup() was not called"
        delta = self.hook.take(batch["input_ids"])
        mask = batch.get("attention_mask")
        clean, count = self.task.loss(outputs.logits, batch)
        (grad,) = torch.autograd.grad(clean, delta, retain_graph=True)  # the loop backprops later
        r = torch.zeros_like(grad)
        for step in range(self.steps):
            r = project_per_example(r + self.alpha * unit_per_example(grad, mask), self.epsilon)
            total, delta = self._forward(model, batch, r)
            if step + 1 < self.steps:
                (grad,) = torch.autograd.grad(total, delta)
        scale = self.scale if self.scale is not None else 1.0 / count.clamp(min=1.0)
        return self.weight * total * scale

    def _forward(
        self, model: nn.Module, batch: dict[str, Any], r: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The task's summed loss with ``r`` added to the embeddings, and that forward's leaf."""
        assert self.hook is not None
        self.hook.fixed = r
        try:
            autocast = self.accelerator.autocast() if self.accelerator is not None else None
            if autocast is None:
                outputs = model(**model_inputs(batch))
            else:
                with autocast:
                    outputs = model(**model_inputs(batch))
        finally:
            self.hook.fixed = None
        total, _ = self.task.loss(outputs.logits, batch)
        return total, self.hook.take(batch["input_ids"])


class FGM(EmbeddingAdversary):
    """Fast Gradient Method on the word embeddings (Miyato, Dai and Goodfellow, ICLR 2017)."""

    def __init__(self, cfg: FGMConfig) -> None:
        """One step of length ``epsilon``."""
        super().__init__(cfg.epsilon, cfg.epsilon, 1, cfg.weight)
        self.cfg = cfg


class PGD(EmbeddingAdversary):
    """Projected Gradient Descent on the word embeddings (Madry et al., ICLR 2018)."""

    def __init__(self, cfg: PGDConfig) -> None:
        """``steps`` steps of length ``alpha`` inside the ``epsilon`` ball."""
        super().__init__(cfg.epsilon, cfg.alpha, cfg.steps, cfg.weight)
        self.cfg = cfg
