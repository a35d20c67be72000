"""DANN (Ganin et al., JMLR 2016): domain-adversarial training with a gradient-reversal layer.

Labelled source data is the recipe's training data; unlabelled target data is a file named in
the objective. A domain classifier (one hidden layer) reads the pooled last hidden state of
source and target examples; between it and the encoder a gradient-reversal layer multiplies the
gradient by ``-lambda``, ``lambda = 2 / (1 + exp(-gamma p)) - 1`` with ``p`` the training
progress, so the classifier learns to tell the domains apart while the encoder learns features
it cannot. The classifier is trained with the model (``modules()``) and checkpointed, but is not
part of the saved model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from domaintune.config.objectives import DANNConfig
from domaintune.data.encode import Encoded
from domaintune.data.pipeline import clean_example
from domaintune.data.readers import Example, read_split
from domaintune.errors import DataError
from domaintune.objectives.capture import first_forward
from domaintune.objectives.protocol import ObjectiveContext
from domaintune.tasks.inference import infer, model_inputs

# A prime stride keeps the permutation seeds of (seed, pass) pairs apart.
_PASS_STRIDE = 1_000_003


class GradientReversal(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``-lambda``.

    Written here because torch has no gradient-reversal op; it is two lines.
    """

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, lam: float) -> torch.Tensor:
        """Pass ``features`` through unchanged."""
        ctx.lam = lam
        return features.view_as(features)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Reverse and scale the gradient; ``lambda`` itself gets none."""
        return -ctx.lam * grad, None


class DomainClassifier(nn.Module):
    """Source-or-target logit from a pooled feature: Linear → ReLU → Dropout → Linear."""

    def __init__(self, width: int, hidden: int, dropout: float) -> None:
        """Layers for features of size ``width``."""
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """One logit per example: (B, H) -> (B,)."""
        return self.net(features).squeeze(-1)


class HiddenCapture:
    """Forward hook on the encoder: ``(input ids, last hidden state)`` of training forwards."""

    def __init__(self, encoder: nn.Module) -> None:
        """Hook ``encoder`` (the transformer body: BERT's ``bert``, Llama's ``model``)."""
        self.seen: list[tuple[Any, torch.Tensor]] = []
        self.handle = encoder.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> None:
        if module.training and torch.is_grad_enabled():
            ids = kwargs.get("input_ids", args[0] if args else None)
            self.seen.append((ids, out[0]))  # (B, T, H): ModelOutput and tuples index alike

    def take(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The hidden state of the first forward on ``input_ids`` since the last call."""
        seen, self.seen = self.seen, []
        return first_forward(seen, input_ids)


def encoder_of(model: nn.Module) -> nn.Module:
    """The transformer body under a task model, through a peft wrapper if there is one."""
    inner: nn.Module = model.get_base_model() if hasattr(model, "get_base_model") else model  # type: ignore[operator]
    return getattr(inner, "base_model", inner)  # type: ignore[no-any-return]


def pool(hidden: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """(B, T, H) -> (B, H): mean over real tokens, or the first token."""
    if how == "first":
        return hidden[:, 0]
    if mask is None:
        return hidden.mean(dim=1)
    if mask.shape[1] != hidden.shape[1]:  # virtual tokens prepended (prompt tuning) count as real
        extra = hidden.shape[1] - mask.shape[1]
        mask = torch.cat([mask.new_ones(mask.shape[0], extra), mask], dim=1)
    weights = mask[..., None].to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def dann_lambda(progress: float, gamma: float) -> float:
    """Ganin et al.'s schedule: 0 at the start, towards 1 at the end."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class DANN:
    """Domain-adversarial training of the encoder against a domain classifier."""

    def __init__(self, cfg: DANNConfig) -> None:
        """Store the config; data, classifier and hook come in ``setup``."""
        self.cfg = cfg
        self.step, self.micro, self.total_steps = 0, 0, 1
        self.lam = 0.0

    def setup(self, ctx: ObjectiveContext) -> None:
        """Read and encode the target data; build the domain classifier; hook the encoder."""
        assert ctx.encode is not None, "dann needs ObjectiveContext.encode"
        self.task, self.accelerator, self.tokenizer = ctx.task, ctx.accelerator, ctx.tokenizer
        self.seed = ctx.train_cfg.seed
        self.batch_size = self.cfg.batch_size or ctx.train_cfg.batch_size
        self.accumulation = ctx.train_cfg.gradient_accumulation
        self.eval_batch_size = ctx.train_cfg.eval_batch_size
        examples = self._read(ctx, self.cfg.target, labels=False, where="target")
        self.target = ctx.encode(examples)
        self.test: tuple[str, list[Example], Encoded] | None = None
        if self.cfg.test is not None:
            self.test = self._labelled(ctx, self.cfg.test, "test")
        else:
            try:  # the target file itself, when it has labels the source knows
                self.test = self._labelled(ctx, self.cfg.target, "target")
            except DataError:
                self.test = None
        width = int(ctx.model.config.hidden_size)  # type: ignore[union-attr,arg-type]
        self.classifier = DomainClassifier(width, self.cfg.hidden_size, self.cfg.dropout)
        self.capture = HiddenCapture(encoder_of(ctx.model))

    def _read(self, ctx: ObjectiveContext, spec: str, labels: bool, where: str) -> list[Example]:
        examples = read_split(spec, ctx.data, ctx.task.kind, need_labels=labels)
        if not examples:
            raise DataError(f"objectives.dann.{where}: {spec} has no examples → give a data file")
        if ctx.data.clean.normalize:
            for example in examples:
                clean_example(example)
        return examples

    def _labelled(
        self, ctx: ObjectiveContext, spec: str, where: str
    ) -> tuple[str, list[Example], Encoded]:
        assert ctx.encode is not None
        examples = self._read(ctx, spec, True, where)
        try:
            return spec, examples, ctx.encode(examples)
        except KeyError as err:
            raise DataError(
                f"objectives.dann.{where}: {spec} has label {err}, which the training data does "
                "not have → use the source's label names in the target-domain file"
            ) from None

    def modules(self) -> list[nn.Module]:
        """The domain classifier: trained, moved to the device and checkpointed by the loop."""
        return [self.classifier]

    def on_train_begin(self, total_steps: int, steps_per_epoch: int, step: int) -> None:
        """Remember the run's length (for the progress ``p``)."""
        self.total_steps = max(1, total_steps)

    def on_step_begin(self, step: int, epoch: int) -> None:
        """A new optimizer step: set lambda from the progress; count micro-batches from 0."""
        self.step, self.micro = step, 0
        self.lam = dann_lambda(step / self.total_steps, self.cfg.gamma)

    def target_indices(self, draw: int) -> list[int]:
        """This process's target examples for the ``draw``-th micro-batch of the run.

        A pure function of (seed, draw): the target stream is a sequence of seeded permutations
        of the target set, so a resumed run draws exactly what the uninterrupted one did.
        """
        n, size = len(self.target), self.batch_size
        picked, cache = [], {}
        for position in range(draw * size, (draw + 1) * size):
            epoch, offset = divmod(position, n)
            if epoch not in cache:
                gen = torch.Generator().manual_seed(self.seed * _PASS_STRIDE + epoch)
                cache[epoch] = torch.randperm(n, generator=gen).tolist()
            picked.append(cache[epoch][offset])
        world = self.accelerator.num_processes if self.accelerator is not None else 1
        rank = self.accelerator.process_index if self.accelerator is not None else 0
        share = -(-len(picked) // world)
        return picked[rank * share : (rank + 1) * share] or picked[:1]

    def loss(self, model: nn.Module, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        """``weight`` x the domain classifier's binary cross-entropy on source + target."""
        source = self.capture.take(batch["input_ids"])  # (B, T, H)
        draw = self.step * self.accumulation + self.micro
        self.micro += 1
        device = batch["input_ids"].device
        features = self.task.collate(
            self.target.subset(self.target_indices(draw)).features,
            self.tokenizer.pad_token_id,
            training=True,
        )
        target_batch = {k: v.to(device) for k, v in features.items() if k != "labels"}
        autocast = self.accelerator.autocast() if self.accelerator is not None else None
        if autocast is None:
            model(**model_inputs(target_batch))
        else:
            with autocast:
                model(**model_inputs(target_batch))
        target = self.capture.take(target_batch["input_ids"])
        pooled = torch.cat(
            [
                pool(source, batch.get("attention_mask"), self.cfg.pooling),
                pool(target, target_batch.get("attention_mask"), self.cfg.pooling),
            ]
        ).float()  # (Bs + Bt, H)
        domains = torch.cat([pooled.new_zeros(len(source)), pooled.new_ones(len(target))])
        logits = self.classifier(GradientReversal.apply(pooled, self.lam))
        return self.cfg.weight * F.binary_cross_entropy_with_logits(logits, domains)

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        """Target-domain metrics of the final model, for results.json (``target``)."""
        if self.test is None:
            return {}
        spec, examples, encoded = self.test
        device = self.accelerator.device if self.accelerator is not None else "cpu"
        outputs = infer(
            model,
            self.task,
            encoded,
            self.eval_batch_size,
            self.tokenizer.pad_token_id,
            device,
            self.accelerator,
        )
        scores = self.task.metrics(outputs, examples, encoded=encoded)
        return {"target": {"file": spec, "examples": len(examples), "test": scores}}
