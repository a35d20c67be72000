"""EWC (Kirkpatrick et al., 2017) and online EWC (Schwarz et al., 2018).

Penalty ``weight / 2 * sum_i F_i (theta_i - theta*_i)^2``: ``theta*`` is the model the stage
starts from (the previous stage's final model) and ``F`` the diagonal Fisher of that model on
the previous task's data (``objectives/fisher.py`` says which Fisher and why).

Where the Fisher comes from:

* ``data``: estimated at the start of the stage on the earlier task's files;
* ``fisher_from``: loaded from an earlier EWC run's ``fisher.safetensors`` (e.g. to try
  another ``weight`` from the same start without estimating again);
* ``online``: ``gamma * loaded + new estimate``, the running Fisher of online EWC over a
  sequence of stages.

Every EWC run writes the Fisher its penalty uses to ``<run>/fisher.safetensors``: the next
stage continues the sequence with ``online: true, fisher_from: stage:<this stage>``, and a
resumed run reloads it instead of estimating again (so its penalty is exactly the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from domaintune.config.objectives import EWCConfig
from domaintune.data.labels import to_iob2
from domaintune.data.pipeline import clean_example
from domaintune.data.readers import Example, read_split
from domaintune.errors import ConfigError
from domaintune.objectives.fisher import (
    FISHER_FILE,
    estimate_fisher,
    fit_shape,
    load_fisher,
    save_fisher,
)
from domaintune.objectives.params import covered_parameters, on_device
from domaintune.objectives.protocol import ObjectiveContext


class EWC:
    """Fisher-weighted quadratic pull towards the stage's starting weights."""

    def __init__(self, cfg: EWCConfig) -> None:
        """Store the config; the Fisher and the anchor are taken in ``setup``."""
        self.cfg = cfg
        self.terms: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor]] = []
        self.report: dict[str, Any] = {}

    def setup(self, ctx: ObjectiveContext) -> None:
        """Anchor the covered parameters and load, estimate or combine their Fisher."""
        params = covered_parameters(ctx)
        run_dir: Path | None = (ctx.extra or {}).get("run_dir")
        saved = run_dir / FISHER_FILE if run_dir is not None else None
        if saved is not None and saved.is_file():  # a resumed run: the same penalty as before
            fisher = load_fisher(saved)
        else:
            fisher = self._fisher(ctx, params)
            if saved is not None and ctx.accelerator.is_main_process:
                save_fisher(saved, fisher, {**self.cfg.model_dump(mode="json"), **self.report})
        self.terms = [
            (param, param.detach().clone(), fit_shape(fisher[name], param))
            for name, param in params.items()
            if name in fisher
        ]

    def _fisher(
        self, ctx: ObjectiveContext, params: dict[str, nn.Parameter]
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        fisher: dict[str, torch.Tensor] = {}
        if cfg.fisher_from is not None:
            loaded = load_fisher(cfg.fisher_from)
            decay = cfg.gamma if cfg.online else 1.0
            fisher = {
                name: decay * fit_shape(loaded[name], param)
                for name, param in params.items()
                if name in loaded
            }
            self.report["loaded_parameters"] = len(fisher)
        if cfg.data:
            examples = self._read(ctx)
            assert ctx.encode is not None, "the run gives objectives its encoder"
            new = estimate_fisher(
                ctx.model,
                ctx.task,
                ctx.encode(examples),
                params,
                estimator=cfg.estimator,
                samples=cfg.samples,
                seed=cfg.seed,
                pad_token_id=ctx.tokenizer.pad_token_id,
            )
            self.report["examples"] = min(cfg.samples, len(examples))
            fisher = {name: fisher.get(name, 0.0) + value for name, value in new.items()}
        return fisher

    def _read(self, ctx: ObjectiveContext) -> list[Example]:
        """The earlier task's examples, read and cleaned as the recipe's data."""
        read_cfg = ctx.data.model_copy(update={"format": "auto", "replay": None})
        examples: list[Example] = []
        for spec in self.cfg.data:
            examples.extend(read_split(spec, read_cfg, ctx.task.kind))
        known = set(getattr(ctx.task, "labels", []))
        for i, example in enumerate(examples):
            if ctx.data.clean.normalize:
                clean_example(example)
            if ctx.task.kind == "tokens":
                tags = to_iob2(example["tags"], True, f"objectives: ewc: data: sentence {i + 1}")
                unknown = [t for t in tags if t not in known]
                if unknown and self.cfg.estimator == "empirical":
                    raise ConfigError(
                        f"objectives: ewc: data: tag {unknown[0]!r} is not among the run's "
                        f"labels → start from the run that learned it (model.init_from), or "
                        "use estimator: true"
                    )
                # The true Fisher samples its labels: the gold tags only mark the words.
                example["tags"] = [t if t in known else "O" for t in tags]
            elif ctx.task.kind == "text" and self.cfg.estimator == "true":
                labels = getattr(ctx.task, "labels", [])
                if labels and str(example.get("label")) not in labels:
                    example["label"] = labels[0]
        return examples

    def loss(self, model: nn.Module, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        """The penalty (a scalar)."""
        self.terms = [(p, on_device(p0, p), on_device(f, p)) for p, p0, f in self.terms]
        total = sum((f * (p - p0) ** 2).sum() for p, p0, f in self.terms)
        return 0.5 * self.cfg.weight * torch.as_tensor(total)
