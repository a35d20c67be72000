"""Multi-task learning: the existing tasks composed over one shared encoder.

Everything the loop and ``api`` call on a task is delegated to the task that owns the batch:
examples carry ``_task`` (their task's index) from reading on, encoded examples a ``task_id``
feature, and every batch holds one task's examples (``batch_sampler`` for training,
``eval_batches`` for inference), so ``collate``, ``loss`` and ``outputs`` are the sub-task's
own. The module trained is ``models.multitask.MultiTaskModel``: the (method-applied) encoder
and a head per task, which live here, outside the method, so LoRA & co. never freeze them.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import torch
from torch import nn

from domaintune.config.multitask import MultiTaskConfig
from domaintune.config.sections import TrainConfig
from domaintune.data.encode import Encoded
from domaintune.data.pipeline import RawSplits, load_splits
from domaintune.data.readers import Example
from domaintune.data.task_sampling import MultiTaskBatchSampler, grouped_sorted_batches
from domaintune.errors import ConfigError, DataError
from domaintune.evaluation.metrics import greater_is_better
from domaintune.models.multitask import MultiTaskModel, TaskHead
from domaintune.tasks.classification import ClassificationTask
from domaintune.tasks.token_classification import TokenClassificationTask

TASK = "_task"  # example key: index of the example's task
MEAN_METRIC = "tasks_mean"  # the selection metric: mean of the tasks' main metrics
_CLASSES: dict[str, Any] = {
    "classification": ClassificationTask,
    "token_classification": TokenClassificationTask,
}


class MultiTask:
    """Several tasks, each with its data, head, loss weight and metrics, over one encoder."""

    kind = "text"
    default_metric = MEAN_METRIC
    mixed_examples = True  # the training split holds several tasks' examples

    def __init__(self, cfg: MultiTaskConfig, state: dict[str, Any] | None = None) -> None:
        """Create every sub-task from its section (and its saved state when reloading)."""
        self.cfg = cfg
        saved = (state or {}).get("tasks", {})
        self.names = [t.name for t in cfg.tasks]
        self.tasks: list[Any] = [
            _CLASSES[t.task.name](t.task, saved.get(t.name)) for t in cfg.tasks
        ]
        self.main = [
            t.metric or task.default_metric for t, task in zip(cfg.tasks, self.tasks, strict=True)
        ]
        for i, metric in enumerate(self.main):
            if not greater_is_better(metric):
                raise ConfigError(
                    f"task.tasks.{i}.metric: {metric!r}: the selection metric averages the "
                    "tasks' main metrics, which must be higher-is-better → pick another metric"
                )
        self.origins: list[dict[str, str]] = [{} for _ in cfg.tasks]
        self.heads: nn.ModuleDict | None = None

    # ------------------------------------------------------------------------------ data
    def load_splits(self) -> RawSplits:
        """Read every task's data with its own options; examples are tagged with their task."""
        splits: dict[str, list[Example]] = {}
        stats: dict[str, Any] = {"tasks": {}}
        origins: dict[str, list[str]] = {}
        for i, (sub, task) in enumerate(zip(self.cfg.tasks, self.tasks, strict=True)):
            raw = load_splits(sub.data, task.kind)
            self.origins[i] = raw.origins
            stats["tasks"][sub.name] = raw.stats
            for split, examples in raw.splits.items():
                for example in examples:
                    example[TASK] = i
                splits.setdefault(split, []).extend(examples)
                origins.setdefault(split, []).append(f"{sub.name}: {raw.origins[split]}")
        stats["sizes"] = {name: len(examples) for name, examples in splits.items()}
        return RawSplits(splits, {k: "; ".join(v) for k, v in origins.items()}, stats)

    def _members(self, examples: list[Example]) -> list[list[int]]:
        """Positions of each task's examples."""
        members: list[list[int]] = [[] for _ in self.tasks]
        for j, example in enumerate(examples):
            if TASK not in example:
                raise DataError(
                    "a multi-task model needs to know each example's task → evaluate or "
                    "predict with one task's folder (RUN/tasks/<name>)"
                )
            members[example[TASK]].append(j)
        return members

    def fit_labels(self, raw: RawSplits) -> None:
        """Each task builds its labels from its own examples."""
        for i, task in enumerate(self.tasks):
            own = {
                name: [e for e in examples if e.get(TASK) == i]
                for name, examples in raw.splits.items()
            }
            task.fit_labels(RawSplits(own, self.origins[i] or raw.origins))

    def state(self) -> dict[str, Any]:
        """Every task's state (labels, CRF scores) and data options, by task name."""
        return {
            "tasks": {n: t.state() for n, t in zip(self.names, self.tasks, strict=True)},
            "max_length": {t.name: t.data.max_length for t in self.cfg.tasks},
        }

    # ----------------------------------------------------------------------------- model
    def auto_class(self) -> Any:
        """``AutoModel``: the encoder without a head (the heads are the task's)."""
        from transformers import AutoModel

        return AutoModel

    def model_kwargs(self) -> dict[str, Any]:
        """Nothing: the heads are built in ``wrap``."""
        return {}

    def bind(self, model_type: str, tokenizer: Any) -> None:
        """Bind every task."""
        for task in self.tasks:
            task.bind(model_type, tokenizer)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The encoder with every task's head; the heads are made once and shared by all wraps."""
        if self.heads is None:
            config = model.config
            self.heads = nn.ModuleDict(
                {
                    name: TaskHead(config, len(task.labels), task.kind == "tokens")
                    for name, task in zip(self.names, self.tasks, strict=True)
                }
            )
        crfs = nn.ModuleDict(
            {
                n: t.crf
                for n, t in zip(self.names, self.tasks, strict=True)
                if getattr(t, "crf", None)
            }
        )
        return MultiTaskModel(model, self.names, self.heads, crfs)

    # -------------------------------------------------------------------------- encoding
    def encode(self, examples: list[Example], tokenizer: Any, max_length: int) -> Encoded:
        """Each task encodes its examples (at its own ``max_length``); a ``task_id`` is added.

        Features of one task only hold empty arrays for the other tasks' examples.
        """
        features: dict[str, list[Any]] = {"task_id": [None] * len(examples)}
        dtypes: dict[str, Any] = {}
        for i, members in enumerate(self._members(examples)):
            if not members:
                continue
            own = self.tasks[i].encode(
                [examples[j] for j in members], tokenizer, self.cfg.tasks[i].data.max_length
            )
            for name, values in own.features.items():
                column = features.setdefault(name, [None] * len(examples))
                dtypes.setdefault(name, values[0].dtype)
                for j, value in zip(members, values, strict=True):
                    column[j] = value
            for j in members:
                features["task_id"][j] = np.asarray([i], dtype=np.int64)
        for name, column in features.items():
            empty = np.zeros(0, dtype=dtypes.get(name, np.int64))
            features[name] = [empty if v is None else v for v in column]
        return Encoded(features)

    def task_ids(self, encoded: Encoded) -> list[int]:
        """The task of every encoded example."""
        return [int(t[0]) for t in encoded.features["task_id"]]

    def batch_sampler(self, train: Encoded, cfg: TrainConfig) -> MultiTaskBatchSampler:
        """Task-homogeneous, length-grouped training batches, tasks mixed by ``p_i``."""
        return MultiTaskBatchSampler(
            self.task_ids(train),
            train.lengths,
            cfg.batch_size,
            cfg.seed,
            self.cfg.exponent,
            cfg.group_by_length,
            cfg.mega_batch_factor,
        )

    def eval_batches(self, encoded: Encoded, batch_size: int) -> list[list[int]]:
        """Length-sorted inference batches inside each task."""
        return grouped_sorted_batches(self.task_ids(encoded), encoded.lengths, batch_size)

    def _task_of(self, batch: dict[str, torch.Tensor]) -> int:
        ids = batch["task_id"]
        if bool((ids != ids[0]).any()):
            raise ValueError("a multi-task batch mixes tasks (use batch_sampler/eval_batches)")
        return int(ids[0])

    def collate(
        self, features: dict[str, list[np.ndarray]], pad_token_id: int, training: bool = False
    ) -> dict[str, torch.Tensor]:
        """The owning task's batch (its own features only) plus ``task_id`` (B,)."""
        ids = torch.from_numpy(np.concatenate(features["task_id"]))  # (B,)
        own = {k: v for k, v in features.items() if k != "task_id" and len(v) and len(v[0]) > 0}
        batch = self.tasks[int(ids[0])].collate(own, pad_token_id, training)
        batch["task_id"] = ids
        self._task_of(batch)
        return batch

    # ------------------------------------------------------------------------------ loss
    def loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The owning task's summed loss times its weight, and its item count."""
        i = self._task_of(batch)
        total, count = self.tasks[i].loss(logits, batch)
        return total * self.cfg.tasks[i].weight, count

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """The owning task's outputs."""
        return self.tasks[self._task_of(batch)].outputs(logits, batch)  # type: ignore[no-any-return]

    # --------------------------------------------------------------------------- metrics
    def metrics(
        self,
        outputs: list[np.ndarray],
        examples: list[Example],
        tune: bool = False,
        encoded: Encoded | None = None,
    ) -> dict[str, Any]:
        """Every task's metrics as ``<task>/<metric>``, and ``tasks_mean`` of their main ones."""
        scores: dict[str, Any] = {}
        mains = []
        for i, members in enumerate(self._members(examples)):
            if not members:
                continue
            own = self.tasks[i].metrics(
                [outputs[j] for j in members],
                [examples[j] for j in members],
                tune,
                encoded.subset(members) if encoded is not None else None,
            )
            if self.main[i] not in own:
                raise ConfigError(
                    f"task.tasks.{i}.metric: {self.main[i]!r}: not a metric of this task → use "
                    f"one of {', '.join(k for k, v in own.items() if isinstance(v, float))}"
                )
            mains.append(float(own[self.main[i]]))
            scores.update({f"{self.names[i]}/{k}": v for k, v in own.items()})
        if mains:
            scores[MEAN_METRIC] = statistics.mean(mains)
        return scores

    def export_tasks(
        self, module: nn.Module, run_dir: Any, recipe: Any, tokenizer: Any, scores: dict[str, Any]
    ) -> dict[str, str]:
        """Each task as a loadable single-task run folder ``RUN/tasks/<name>``."""
        from domaintune.tasks.multitask_export import export_tasks

        return export_tasks(self, module, run_dir, recipe, tokenizer, scores)

    def format_predictions(
        self, outputs: list[np.ndarray], examples: list[Example], encoded: Encoded, tokenizer: Any
    ) -> list[dict[str, Any]]:
        """Each task's own predictions, with the task's name, in input order."""
        rows: list[dict[str, Any]] = [{} for _ in examples]
        for i, members in enumerate(self._members(examples)):
            if members:
                own = self.tasks[i].format_predictions(
                    [outputs[j] for j in members],
                    [examples[j] for j in members],
                    encoded.subset(members),
                    tokenizer,
                )
                for j, row in zip(members, own, strict=True):
                    rows[j] = {"task": self.names[i], **row}
        return rows
