"""Helpers of the exact-resume tests: a run killed like a power cut, and weight comparisons."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

# Runs the CLI, and SIGKILLs the process right after its N-th checkpoint (argv[1]).
KILLER = """
import os, signal, sys
import domaintune.training.loop as loop
original = loop.save_checkpoint
saved = []
def save_then_maybe_die(*args, **kwargs):
    path = original(*args, **kwargs)
    saved.append(path)
    if len(saved) == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no atexit: like a power cut
    return path
loop.save_checkpoint = save_then_maybe_die
from domaintune.cli import app
app(sys.argv[2:])
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``domaintune ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "domaintune.cli", *args], capture_output=True, text=True, timeout=300
    )


def train_until_killed(recipe: Path, output: Path, checkpoints: int) -> None:
    """``domaintune train`` killed by SIGKILL right after its ``checkpoints``-th checkpoint."""
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(checkpoints), "train", str(recipe), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr  # died by SIGKILL, not by an error


def assert_same_tensors(a: Path, b: Path, tolerance: float = 1e-6) -> dict[str, torch.Tensor]:
    """Both safetensors files hold the same names and values; returns the first's tensors."""
    first, second = load_file(str(a)), load_file(str(b))
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert (tensor - second[name]).abs().max().item() <= tolerance, (a.name, name)
    return first
