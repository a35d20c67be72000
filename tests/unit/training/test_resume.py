"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends with the same weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file

from tests.conftest import recipe_dict

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


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "domaintune.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = recipe_dict(tiny_bert, cls_data, epochs=3, checkpoint_every=5)
    del recipe["data"]["validation"]  # type: ignore[index]
    recipe["data"]["split"] = {"validation": 0.0}  # type: ignore[index]  # no eval: final = last step
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")

    straight = _cli("train", str(path), "-o", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "2", "train", str(path), "-o", str(tmp_path / "resumed")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr  # died by SIGKILL after its 2nd checkpoint
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert checkpoints == ["step-10"]  # 12 steps an epoch: the kill came mid-epoch
    assert not (tmp_path / "resumed" / "final").exists()

    refused = _cli("train", str(path), "-o", str(tmp_path / "resumed"))
    assert refused.returncode == 2 and "--resume" in refused.stderr

    resumed = _cli("train", str(path), "-o", str(tmp_path / "resumed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr and "step 10" in resumed.stderr

    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    initial = load_file(str(tiny_bert / "model.safetensors"))
    moved = 0
    for name, tensor in a.items():
        assert (tensor - b[name]).abs().max().item() <= 1e-6, name
        short = name.removeprefix("bert.")
        if short in initial and not (initial[short] - tensor).abs().max().item() < 1e-6:
            moved += 1
    assert moved > 10  # the weights really trained
