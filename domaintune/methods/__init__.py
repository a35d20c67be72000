"""Methods decide what trains: applied once to the model, before the optimizer is built."""

from types import ModuleType

from domaintune.methods import freeze, full, peft

# name -> module with apply(model, cfg) -> model, export(model) -> model, optional param_groups.
METHODS: dict[str, ModuleType] = {
    "full": full,
    "freeze": freeze,
    "lora": peft,
}

__all__ = ["METHODS"]
