"""Methods decide what trains: applied once to the model, before the optimizer is built.

A method module provides:

- ``apply(model, cfg) -> model``: make only the method's parameters (and the task head) train;
  it may wrap the model or inject modules.
- ``export(model) -> model | None``: a plain transformers model with the method merged into the
  base weights, or None when the method cannot merge (prefix, soft prompts, adapters).
- ``base_model(model) -> model`` (methods that cannot merge): the plain transformers model
  without the method's modules, with the trained task head; saved as the run's ``final/``.
- ``load_adapter(model, folder, cfg) -> model`` (methods that cannot merge): apply the method to
  a reloaded ``base_model`` and load the adapter weights saved by ``save_adapter``.
- optional ``save_adapter(model, folder)``: the adapter-only checkpoint (``final/adapter/``;
  peft's format where peft is used).
- optional ``param_groups(model, cfg, lr) -> groups | None``: optimizer groups with their own LR.
- optional ``callbacks(model, cfg) -> list``: objects the training loop calls; each may define
  ``on_train_begin(total_steps, steps_per_epoch, step)``, ``on_step_begin(step, epoch)``,
  ``on_step_end(step)`` (after the optimizer step, before gradients are cleared) and
  ``loss(model, batch, outputs)`` (an extra loss term, like an objective's).
- optional ``adapt_task(task, cfg, state) -> task``: a method that changes what the task
  encodes and scores (prompting) returns the task it works through; see :func:`adapt_task`.
"""

from types import ModuleType
from typing import Any

from domaintune.methods import (
    adapters,
    bitfit,
    freeze,
    full,
    peft,
    prefix,
    prompting,
    soft_prompt,
)

# name -> method module (see the module docstring for the functions each provides).
METHODS: dict[str, ModuleType] = {
    "full": full,
    "freeze": freeze,
    "bitfit": bitfit,
    "lora": peft,
    "adalora": peft,
    "ia3": peft,
    "prefix": prefix,
    "prompt_tuning": soft_prompt,
    "adapter": adapters,
    "prompting": prompting,
}


def can_merge(module: ModuleType) -> bool:
    """Whether the method's ``export`` can merge (methods that cannot define ``base_model``)."""
    return not hasattr(module, "base_model")


def adapt_task(task: Any, cfg: Any, state: dict[str, Any] | None = None) -> Any:
    """The task as the method ``cfg`` needs it (most methods: unchanged).

    Called where a task is built: for a new run (``api.prepare_data``) and for a saved one
    (``deploy.load``, with the run's task ``state``).
    """
    hook = getattr(METHODS[cfg.name], "adapt_task", None)
    return hook(task, cfg, state) if hook is not None else task


__all__ = ["METHODS", "adapt_task", "can_merge"]
