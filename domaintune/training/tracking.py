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
MLFLOW_DIR = "mlruns"  # <run>/mlruns/: the run's MLflow store (mlflow.db) and artifacts


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


def mlflow_store(run_dir: Path) -> tuple[str, str]:
    """The tracking URI and artifact location of a run's local MLflow store (no server).

    A SQLite database, ``<run>/mlruns/mlflow.db``: MLflow 3 refuses its file store unless an
    environment variable allows it. ``mlflow ui --backend-store-uri sqlite:///<run>/mlruns/
    mlflow.db`` shows it.
    """
    root = (run_dir / MLFLOW_DIR).resolve()
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def start_trackers(accelerator: Any, recipe: Any, run_dir: Path) -> None:
    """Start the recipe's trackers with the flattened recipe as hyper-parameters."""
    if not recipe.train.report_to:
        return
    from domaintune.reports.compare import flatten

    init_kwargs: dict[str, dict[str, Any]] = {}
    if "mlflow" in recipe.train.report_to:
        uri, artifacts = mlflow_store(run_dir)
        if accelerator.is_main_process:
            import logging

            import mlflow

            (run_dir / MLFLOW_DIR).mkdir(parents=True, exist_ok=True)
            mlflow.set_tracking_uri(uri)  # set here, so MLFLOW_TRACKING_URI cannot redirect it
            for name in ("alembic", "mlflow.store.db.utils"):  # the store's schema set-up
                logging.getLogger(name).setLevel(logging.WARNING)
        init_kwargs["mlflow"] = {"logging_dir": artifacts}  # the experiment's artifact location
    flat = flatten(recipe.model_dump(mode="json"))
    # Trackers take scalars only (TensorBoard's hparams refuse None and lists).
    config = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat.items()}
    accelerator.init_trackers(run_dir.resolve().name, config=config, init_kwargs=init_kwargs)


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
