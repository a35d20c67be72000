"""The one training loop (on Accelerate), with objectives plugged into the step.

Methods are applied before this loop sees the model; objectives add loss terms inside the step.
Loss normalisation is exact under DDP and accumulation: each process divides its summed loss by
the item count of the whole global batch, so token-level losses are never averaged per process.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from domaintune.config.sections import TrainConfig
from domaintune.data.batching import TrainBatchSampler
from domaintune.data.encode import Encoded
from domaintune.data.readers import Example
from domaintune.runs import RunFolder
from domaintune.tasks.inference import infer, model_inputs
from domaintune.tasks.protocol import Task
from domaintune.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from domaintune.training.objective_modules import (
    attach_modules,
    objective_modules,
    sync_gradients,
)
from domaintune.training.optim import build_optimizer, build_scheduler
from domaintune.training.progress import TrainingProgress


@dataclass
class LoopData:
    """What the loop trains and evaluates on."""

    train: Encoded
    pad_token_id: int
    validation: Encoded | None = None
    validation_examples: list[Example] | None = None


@dataclass
class LoopResult:
    """What the loop did."""

    steps: int
    train_seconds: float
    train_examples: int
    best_metric: float | None
    best_step: int | None
    stopped_early: bool
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def samples_per_second(self) -> float:
        """Training examples per second of training time."""
        return self.train_examples / self.train_seconds if self.train_seconds else 0.0

    def record(self, accelerator: Any, trainable: int, total: int) -> dict[str, Any]:
        """The ``train`` section of results.json."""
        return {
            "seconds": round(self.train_seconds, 3),
            "steps": self.steps,
            "examples_seen": self.train_examples,
            "samples_per_second": round(self.samples_per_second, 3),
            "best_step": self.best_step,
            "stopped_early": self.stopped_early,
            "processes": accelerator.num_processes,
            "precision": {"no": "fp32"}.get(
                accelerator.mixed_precision, accelerator.mixed_precision
            ),
            "trainable_parameters": trainable,
            "total_parameters": total,
        }


def train_loop(
    accelerator: Any,
    model: nn.Module,
    task: Task,
    data: LoopData,
    cfg: TrainConfig,
    metric: str,
    greater: bool,
    run: RunFolder,
    param_groups: list[dict[str, Any]] | None = None,
    objectives: list[Any] | None = None,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> LoopResult:
    """Train ``model`` on ``data.train``; evaluate, keep the best weights, checkpoint, resume.

    ``callbacks`` (from the method) may define ``on_train_begin(total_steps, steps_per_epoch,
    step)``, ``on_step_begin(step, epoch)``, ``on_step_end(step)`` and ``loss(model, batch,
    outputs)``; see ``domaintune.methods``. Objectives get the same hooks, plus
    ``on_loss_scale(scale)`` before each ``loss`` call (the factor applied to this micro-batch's
    summed task loss) and ``modules()`` (trainable modules outside the model, see
    ``training.objective_modules``). A task with ``batch_sampler(train, cfg)`` provides the
    training batches (an object with ``set_epoch``, ``batches()`` and ``len``, a pure function of
    seed and epoch, as ``TrainBatchSampler``).
    """
    callbacks = callbacks or []
    own = list(objectives or [])
    if not any(p.requires_grad for p in model.parameters()) and not objective_modules(own):
        # Nothing trains (prompting zero-shot or in-context): the run only evaluates.
        model.to(accelerator.device)
        return LoopResult(0, 0.0, 0, None, None, False)
    objectives = [*own, *(c for c in callbacks if hasattr(c, "loss"))]
    listeners = [*callbacks, *own]  # a callback with a loss is not an objective twice here
    # A task may draw its own batches (multi-task: one task per batch, tasks mixed by share).
    own_sampler = getattr(task, "batch_sampler", None)
    sampler = (
        own_sampler(data.train, cfg)
        if own_sampler is not None
        else TrainBatchSampler(
            data.train.lengths, cfg.batch_size, cfg.seed, cfg.group_by_length, cfg.mega_batch_factor
        )
    )

    optimizer = build_optimizer(model, cfg, param_groups)
    extra_params = attach_modules(accelerator, objective_modules(own), optimizer, cfg)
    batches_per_epoch = len(sampler)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.gradient_accumulation)
    total_steps = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "best": None,
        "best_step": None,
        "bad_evals": 0,
        "train_seconds": 0.0,
        "examples": 0,
        "evaluations": [],
    }
    checkpoint = latest_checkpoint(run.checkpoints) if resume else None
    if checkpoint is not None:
        state.update(load_checkpoint(accelerator, checkpoint))
        if accelerator.is_main_process:
            run.truncate_log(state["step"])  # drop what the interrupted run logged after it

    progress = TrainingProgress(total_steps, state["step"], accelerator.is_main_process)
    if checkpoint is None and (advice := few_steps_advice(total_steps, len(data.train), cfg)):
        progress.note(advice)
    _call(listeners, "on_train_begin", total_steps, steps_per_epoch, state["step"])
    if checkpoint is not None:
        progress.note(f"resumed from {checkpoint} (step {state['step']})")
    world = accelerator.num_processes
    unwrapped = accelerator.unwrap_model(model)
    stopped_early = False
    started = time.perf_counter()
    window_loss = torch.zeros(2)
    model.train()

    def evaluate_now() -> bool:
        """Evaluate on validation; keep the best weights; return True to stop early."""
        nonlocal stopped_early
        if data.validation is None or data.validation_examples is None:
            return False
        outputs = infer(
            unwrapped,
            task,
            data.validation,
            cfg.eval_batch_size,
            data.pad_token_id,
            accelerator.device,
            accelerator,
        )
        scores = task.metrics(outputs, data.validation_examples, tune=True, encoded=data.validation)
        value = float(scores[metric])
        improved = state["best"] is None or (
            value > state["best"] + _min_delta(cfg)
            if greater
            else value < state["best"] - _min_delta(cfg)
        )
        record = {
            "event": "eval",
            "step": state["step"],
            "epoch": round(_epoch(state, batches_per_epoch), 3),
            **{k: v for k, v in scores.items() if isinstance(v, float)},
        }
        state["evaluations"].append(record)
        if improved:
            state["best"], state["best_step"], state["bad_evals"] = value, state["step"], 0
            if accelerator.is_main_process:
                _save_weights(unwrapped, run)
        else:
            state["bad_evals"] += 1
        if accelerator.is_main_process:
            run.log(record)
            accelerator.log(_numbers(record), step=state["step"])  # no-op without trackers
            progress.note(
                f"step {state['step']}: {metric} {value:.4f}" + (" (best)" if improved else ""),
                {metric: value},
            )
        accelerator.wait_for_everyone()
        if cfg.early_stopping is not None and state["bad_evals"] >= cfg.early_stopping.patience:
            stopped_early = True
        return stopped_early

    def checkpoint_now() -> None:
        state["train_seconds"] += time.perf_counter() - started_at[0]
        started_at[0] = time.perf_counter()
        save_checkpoint(accelerator, run.checkpoints, state["step"], state, cfg.keep_checkpoints)

    started_at = [started]
    done = state["step"] >= total_steps
    while not done:
        sampler.set_epoch(state["epoch"])
        for indices in sampler.batches()[state["batch_in_epoch"] :]:
            batch, weight = _local_batch(indices, accelerator, task, data)
            position = state["batch_in_epoch"]
            window = min(
                cfg.gradient_accumulation,
                batches_per_epoch - (position - position % cfg.gradient_accumulation),
            )
            last_of_window = (
                position + 1
            ) % cfg.gradient_accumulation == 0 or position + 1 == batches_per_epoch
            if position % cfg.gradient_accumulation == 0:
                _call(listeners, "on_step_begin", state["step"], state["epoch"])
            sync = accelerator.no_sync(model) if not last_of_window and world > 1 else nullcontext()
            with sync:
                with accelerator.autocast():
                    outputs = model(**model_inputs(batch))
                total, count = task.loss(outputs.logits, batch)
                total, count = total * weight, count * weight
                totals = accelerator.reduce(torch.stack([total.detach(), count]), reduction="sum")
                scale = world / totals[1].clamp(min=1.0)
                loss = total * scale / window
                _call(objectives, "on_loss_scale", scale * weight)
                for objective in objectives:
                    loss = loss + objective.loss(unwrapped, batch, outputs) / window
                accelerator.backward(loss)
            window_loss += totals.detach().cpu()
            state["batch_in_epoch"] += 1
            state["examples"] += len(indices)
            if not last_of_window:
                continue
            sync_gradients(accelerator, extra_params)
            if cfg.max_grad_norm is not None:
                accelerator.clip_grad_norm_([*model.parameters(), *extra_params], cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            _call(listeners, "on_step_end", state["step"])
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            mean_loss = float(window_loss[0] / window_loss[1].clamp(min=1.0))
            progress.step(mean_loss)
            if state["step"] % cfg.log_every == 0 and accelerator.is_main_process:
                train_record = {
                    "event": "train",
                    "step": state["step"],
                    "loss": round(mean_loss, 6),
                    "lr": scheduler.get_last_lr()[0],
                }
                run.log(train_record)
                accelerator.log(_numbers(train_record), step=state["step"])
            window_loss.zero_()
            end_of_epoch = state["batch_in_epoch"] >= batches_per_epoch
            if end_of_epoch:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
            evaluate_due = (cfg.eval_every is not None and state["step"] % cfg.eval_every == 0) or (
                cfg.eval_every is None and end_of_epoch
            )
            done = state["step"] >= total_steps
            unevaluated_end = done and (
                not state["evaluations"] or state["evaluations"][-1]["step"] != state["step"]
            )
            stop = evaluate_now() if (evaluate_due or unevaluated_end) else False
            checkpoint_due = (
                cfg.checkpoint_every is not None and state["step"] % cfg.checkpoint_every == 0
            ) or (cfg.checkpoint_every is None and evaluate_due)
            if checkpoint_due and not done and not stop:
                checkpoint_now()
            if done or stop:
                done = True
                break
    state["train_seconds"] += time.perf_counter() - started_at[0]
    progress.close()
    if state["best"] is not None:
        _load_weights(unwrapped, run)
    return LoopResult(
        steps=state["step"],
        train_seconds=state["train_seconds"],
        train_examples=state["examples"],
        best_metric=state["best"],
        best_step=state["best_step"],
        stopped_early=stopped_early,
        evaluations=state["evaluations"],
    )


def _local_batch(
    indices: list[int], accelerator: Any, task: Task, data: LoopData
) -> tuple[dict[str, torch.Tensor], float]:
    """This process's contiguous share of a global batch, on its device.

    Sharding by hand (rather than through a prepared DataLoader) keeps batch order a pure
    function of seed and epoch and draws nothing from the global RNG, which dropout uses, so a
    resumed run replays the same random numbers. A process whose share is empty (a last batch
    smaller than the process count) runs one example with weight 0 to keep DDP in step.
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    size = -(-len(indices) // world)
    local = indices[rank * size : (rank + 1) * size]
    weight = 1.0
    if not local:
        local, weight = indices[:1], 0.0
    batch = task.collate(data.train.subset(local).features, data.pad_token_id, training=True)
    return {k: v.to(accelerator.device) for k, v in batch.items()}, weight


def _min_delta(cfg: TrainConfig) -> float:
    return cfg.early_stopping.min_delta if cfg.early_stopping is not None else 0.0


def _epoch(state: dict[str, Any], batches_per_epoch: int) -> float:
    return float(state["epoch"] + state["batch_in_epoch"] / max(1, batches_per_epoch))


def _call(callbacks: list[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` on every callback that defines it."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(*args)


def _save_weights(model: nn.Module, run: RunFolder) -> None:
    from safetensors.torch import save_model

    run.best.mkdir(parents=True, exist_ok=True)
    tmp = run.best / "model.safetensors.tmp"
    save_model(model, str(tmp))
    tmp.replace(run.best / "model.safetensors")


def _load_weights(model: nn.Module, run: RunFolder) -> None:
    from safetensors.torch import load_model

    load_model(model, str(run.best / "model.safetensors"))


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record as tracker scalars, named by event (``train/loss``, ``eval/f1``)."""
    event = record.get("event", "train")
    return {
        f"{event}/{k}": float(v)
        for k, v in record.items()
        if k not in {"event", "step"} and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


# Below this many optimiser steps (with epochs, not max_steps, deciding) a run is told it may be
# too short. Measured (docs/augmentation.md): MiniLM on 100 sentences, batch 16, 3 epochs = 21
# steps learnt nothing (majority class; no entity); 500 sentences, 96 steps, scored 23 to 25
# points below the same data trained for 9 epochs. A run whose epochs were already raised above
# the default has taken that advice (the few-shot recipes: 20 epochs of 3 batches), so it is not
# told again.
FEW_STEPS = 200


def few_steps_advice(total_steps: int, examples: int, cfg: TrainConfig) -> str | None:
    """A one-line warning when the default ``train.epochs`` gives a small data set few steps."""
    default_epochs = TrainConfig.model_fields["epochs"].default
    if cfg.max_steps is not None or total_steps >= FEW_STEPS or cfg.epochs > default_epochs:
        return None
    return (
        f"warning: train: only {total_steps} optimiser steps ({examples} training examples, "
        f"batch_size {cfg.batch_size}, epochs {cfg.epochs:g}); small data sets need more steps "
        "to learn (docs/augmentation.md) → raise train.epochs or set train.max_steps"
    )
