"""Resumable checkpoints: Accelerate's state (weights, optimizer, scheduler, RNG) + loop state."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

_STATE = "loop_state.json"


def save_checkpoint(
    accelerator: Any, folder: Path, step: int, loop_state: dict[str, Any], keep: int
) -> Path:
    """Save a complete checkpoint as ``step-N`` atomically (written aside, then renamed).

    Every process must call this (each saves its own RNG state).
    """
    final = folder / f"step-{step}"
    tmp = folder / f".step-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / _STATE).write_text(json.dumps(loop_state), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(complete_checkpoints(folder), key=_step)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints that finished writing, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step-*") if (p / _STATE).is_file()]
    return sorted(found, key=_step)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint, if any."""
    found = complete_checkpoints(folder)
    return found[-1] if found else None


def load_checkpoint(accelerator: Any, path: Path) -> dict[str, Any]:
    """Restore Accelerate's state and return the loop state saved with it."""
    accelerator.load_state(str(path))
    return dict(json.loads((path / _STATE).read_text(encoding="utf-8")))


def _step(path: Path) -> int:
    return int(path.name.split("-", 1)[1])
