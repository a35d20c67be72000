"""A finished multi-task run's tasks as ordinary single-task run folders (``RUN/tasks/<name>``).

Each folder holds ``final/`` (the shared encoder and that task's head as one transformers model:
``AutoModelFor{Sequence,Token}Classification``), its ``domaintune.json`` and a ``results.json``
with the task's own metrics, so ``domaintune evaluate / predict / export / serve`` take it as
they take any run. A task is exported only when the transformers model gives the same logits as
the multi-task model on a probe batch (BERT-family heads match; others are reported, not
written). The heads themselves are also saved as ``final/heads.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from domaintune.models.load import ModelSource, load_model
from domaintune.runs import RunFolder, write_run_state

PROBE = ["the patient has a mild fever", "profit rose in the market and the result was good"]
TOLERANCE = 1e-4


def export_tasks(
    task: Any, module: Any, run_dir: Path, recipe: Any, tokenizer: Any, scores: dict[str, Any]
) -> dict[str, str]:
    """Write ``tasks/<name>/`` for every task; return ``name -> folder`` or why it was not."""
    from safetensors.torch import save_model

    final = RunFolder(run_dir).final
    heads = nn.ModuleDict({"heads": module.heads, "crfs": module.crfs})
    save_model(heads, str(final / "heads.safetensors"))
    source = ModelSource(str(final), True)
    probe = dict(tokenizer(PROBE, padding=True, return_tensors="pt"))
    module.eval()
    report: dict[str, str] = {}
    for i, (sub_cfg, sub) in enumerate(zip(task.cfg.tasks, task.tasks, strict=True)):
        name = sub_cfg.name
        model = load_model(source, sub.auto_class(), **sub.model_kwargs())
        head = module.heads[name].classifier
        target = getattr(model, "classifier", None)
        if not isinstance(target, nn.Linear) or target.weight.shape != head.weight.shape:
            report[name] = f"not exported: {type(model).__name__} has no matching classifier"
            continue
        target.load_state_dict(head.state_dict())
        model.eval()
        if not _same_logits(model, module, probe, i):
            report[name] = f"not exported: {type(model).__name__} gives other logits"
            continue
        folder = RunFolder(run_dir / "tasks" / name)
        model.save_pretrained(str(folder.final))
        tokenizer.save_pretrained(str(folder.final))
        single = SimpleNamespace(
            method=recipe.method, task=sub_cfg.task, data=sub_cfg.data, train=recipe.train
        )
        write_run_state(folder, single, sub.state(), True)
        prefix = f"{name}/"
        results = {
            "metric": task.main[i],
            "multitask_run": str(run_dir),
            **{
                split: {k.removeprefix(prefix): v for k, v in s.items() if k.startswith(prefix)}
                for split, s in scores.items()
            },
        }
        folder.results.write_text(json.dumps(results, indent=1), encoding="utf-8")
        report[name] = str(folder.root)
    return report


def _same_logits(model: nn.Module, module: nn.Module, probe: dict[str, Any], task: int) -> bool:
    """Whether the exported model and the multi-task module agree on the probe batch."""
    device = next(module.parameters()).device
    with torch.inference_mode():
        ours = (
            module(
                task_id=torch.full((len(PROBE),), task, device=device),
                **{k: v.to(device) for k, v in probe.items()},
            )
            .logits.float()
            .cpu()
        )
        theirs = model(**probe).logits.float()
    return ours.shape == theirs.shape and bool((ours - theirs).abs().max() <= TOLERANCE)
