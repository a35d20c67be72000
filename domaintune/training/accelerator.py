"""The Accelerator of a run, and the CPU fast path the loop trains in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from domaintune.config.sections import TrainConfig
from domaintune.errors import ConfigError
from domaintune.models.load import quiet_libraries


def build_accelerator(
    cfg: TrainConfig, mixed_precision: str, project_dir: Path | None = None
) -> Any:
    """An Accelerator with the global batch split over processes.

    ``mixed_precision`` is Accelerate's (``no``, ``bf16``, ``fp16``), already checked against
    the hardware (``api.resolve_precision``). With ``train.report_to``, Accelerate's trackers
    log into ``project_dir`` (the run folder).
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    from domaintune.training.tracking import check_trackers

    quiet_libraries()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // world)
    torch.set_num_threads(threads)
    if cfg.batch_size % world:
        raise ConfigError(
            f"train.batch_size: {cfg.batch_size}: not divisible by {world} "
            "processes → use a multiple of the process count"
        )
    from accelerate.state import AcceleratorState

    # Accelerate keeps one process-wide state and refuses a second Accelerator with another
    # precision; a Python session may run several recipes, so start each run from a fresh one
    # (the process group, in PartialState, is kept).
    AcceleratorState._reset_state()
    return Accelerator(
        mixed_precision=mixed_precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        cpu=not torch.cuda.is_available(),
        rng_types=[],
        log_with=check_trackers(cfg.report_to) or None,
        project_config=ProjectConfiguration(
            project_dir=str(project_dir), logging_dir=str(project_dir / "tensorboard")
        )
        if cfg.report_to and project_dir is not None
        else None,
    )


@contextmanager
def cpu_fast_path(model: Any, device: Any) -> Iterator[None]:
    """On CPU: reuse freed memory and draw cheaper dropout masks while ``model`` trains.

    Both are measured in docs/architecture.md (Performance notes); neither changes the model's
    maths (the masks keep dropout's distribution), and the model is a plain transformers model
    again on exit.
    """
    if getattr(device, "type", str(device)) != "cpu":
        yield
        return
    from domaintune.models.dropout import cheap_dropout
    from domaintune.training.allocator import keep_freed_memory

    keep_freed_memory()
    with cheap_dropout(model):
        yield
