"""domaintune: adapt pretrained language models to a specialised domain, from YAML recipes.

``load_recipe`` needs only pydantic; ``run``, ``evaluate``, ``predict`` and ``export`` import
torch when first used, so that validating a recipe stays light.
"""

from __future__ import annotations

from typing import Any

from domaintune.config import Recipe, load_recipe

__all__ = [
    "Recipe",
    "RunResult",
    "compare",
    "evaluate",
    "export",
    "load_recipe",
    "predict",
    "predict_file",
    "report",
    "run",
    "run_pipeline",
    "text_perplexity",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in {
        "run",
        "run_pipeline",
        "evaluate",
        "predict",
        "RunResult",
        "load_run",
        "report",
        "compare",
        "predict_file",
        "export",
    }:
        from domaintune import api

        return getattr(api, name)
    if name == "text_perplexity":
        from domaintune.evaluation.perplexity import text_perplexity

        return text_perplexity
    raise AttributeError(f"module 'domaintune' has no attribute {name!r}")
