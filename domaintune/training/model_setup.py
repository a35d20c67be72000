"""The model stage of a run: load, size the head, apply the method, group the parameters.

``api.run`` calls ``prepare_model`` once per run, after the data stage and before the
objectives and the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from torch import nn


@dataclass
class PreparedModel:
    """The model with its method applied, and what the later stages need to know about it."""

    model: nn.Module
    method: ModuleType  # the ``METHODS`` module (save_adapter, export, base_model...)
    fresh: set[str]  # parameter names the checkpoint lacked (new heads)
    pretrained: set[str]  # parameter names loaded from the checkpoint
    groups: list[dict[str, Any]] | None  # optimizer parameter groups (None: one group)
    callbacks: list[Any] = field(default_factory=list)  # the method's loop callbacks
    grown: list[str] = field(default_factory=list)  # heads grown to the union of the labels


def prepare_model(
    recipe: Any,
    task: Any,
    source: Any,
    tokenizer: Any,
    previous_labels: list[str] | None,
    vocabulary: tuple[Any, list[str], dict[str, Any]] | None = None,
) -> PreparedModel:
    """Load the task's model and apply the recipe's method.

    Args:
        recipe: The run's recipe (model, method, task and train sections).
        task: The run's task, bound to the tokenizer.
        source: Where the model comes from (``models.load.resolve_source``).
        tokenizer: The run's tokenizer (expanded when ``model.expand_vocab`` is set).
        previous_labels: The earlier stage's labels when the head grows to their union.
        vocabulary: ``(base tokenizer, added tokens, report)`` of a vocabulary expansion; the
            report gets how the new embeddings were initialised.

    """
    from domaintune.methods import METHODS
    from domaintune.models.load import load_model
    from domaintune.tasks.label_growth import grow_head, label_kwargs
    from domaintune.training.optim import boost_parameters

    kwargs = task.model_kwargs() if previous_labels is None else label_kwargs(previous_labels)
    model, info = load_model(source, task.auto_class(), output_loading_info=True, **kwargs)
    grown = grow_head(model, previous_labels, task.labels) if previous_labels else []
    model.config.pad_token_id = tokenizer.pad_token_id
    if vocabulary is not None:
        from domaintune.models.vocab import init_new_embeddings

        base_tokenizer, added, report = vocabulary
        report["init"] = init_new_embeddings(model, base_tokenizer, tokenizer, added)
    if recipe.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    fresh = set(info.get("missing_keys", []))
    if hasattr(task, "on_model_loaded"):  # prompting: what the checkpoint lacks picks scoring
        task.on_model_loaded(model, fresh)
    pretrained = {n for n, _ in model.named_parameters()} - fresh
    fresh_params = [p for n, p in model.named_parameters() if n in fresh]
    method = METHODS[recipe.method.name]
    model = method.apply(model, recipe.method)
    groups = (
        method.param_groups(model, recipe.method, recipe.train.lr)
        if hasattr(method, "param_groups")
        else None
    )
    multiplier = getattr(recipe.task, "head_lr_multiplier", 1.0)
    if fresh_params and multiplier != 1.0:
        groups = boost_parameters(model, groups, fresh_params, multiplier, recipe.train.lr)
    callbacks = method.callbacks(model, recipe.method) if hasattr(method, "callbacks") else []
    return PreparedModel(model, method, fresh, pretrained, groups, callbacks, grown)
