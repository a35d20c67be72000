"""Experiment tracking (``train.report_to``) through Accelerate's trackers.

The loop sends every metrics.jsonl record to ``accelerator.log`` (a no-op without trackers);
this module checks the tracker packages, starts the trackers and logs the final metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domaintune.errors import ConfigError

TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}


def check_trackers(names: Sequence[str]) -> list[str]:
    """The trackers of ``train.report_to``; a one-line error naming a package that is missing."""
    from importlib.util import find_spec

    for name in names:
        packages = TRACKER_PACKAGES[name]
        if not any(find_spec(p) is not None for p in packages):
            raise ConfigError(
                f"train.report_to: {name!r}: the {' or '.join(packages)} package is not "
                f"installed → pip install {packages[-1]}, or remove {name} from report_to"
            )
    return list(names)


def start_trackers(accelerator: Any, recipe: Any, run_dir: Path) -> None:
    """Start the recipe's trackers with the flattened recipe as hyper-parameters."""
    if not recipe.train.report_to:
        return
    from domaintune.reports.compare import flatten

    if "mlflow" in recipe.train.report_to and accelerator.is_main_process:
        import mlflow

        mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())  # a local store
    flat = flatten(recipe.model_dump(mode="json"))
    # Trackers take scalars only (TensorBoard's hparams refuse None and lists).
    config = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat.items()}
    accelerator.init_trackers(run_dir.resolve().name, config=config)


def finish_trackers(accelerator: Any, scores: dict[str, dict[str, Any]], step: int) -> None:
    """Log the final validation/test metrics as ``<split>/<metric>`` and close the trackers."""
    accelerator.log(
        {
            f"{split}/{k}": v
            for split, values in scores.items()
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        },
        step=step,
    )
    accelerator.end_training()
