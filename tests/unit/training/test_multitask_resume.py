"""Exact resume of a multi-task run: killed mid-epoch and resumed, it ends with the same weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file

from domaintune import api
from tests.unit.training.test_multitask_run import multitask_recipe
from tests.unit.training.test_resume import KILLER


def test_multitask_sigkill_then_resume_matches_uninterrupted(
    tiny_bert: Path, tmp_path: Path
) -> None:
    recipe = multitask_recipe(
        tiny_bert, tmp_path, {"name": "full"}, epochs=2, checkpoint_every=1, eval_every=None
    )
    for sub in recipe["task"]["tasks"]:  # no evaluation: the final model is the last step's
        del sub["data"]["validation"]
        sub["data"]["split"] = {"validation": 0.0}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")

    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "6", "train", str(path), "-o", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    # epochs of 4 batches (2 a task): the kill after step 6 came mid-way through the second
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step-6"]
    # in this process (only the kill needed its own): the uninterrupted run, then the resume
    api.run(path, output_dir=tmp_path / "a")
    resumed = api.run(path, output_dir=tmp_path / "b", resume=True)
    assert resumed.steps == 8
    for name in ("model.safetensors", "heads.safetensors"):
        a = load_file(str(tmp_path / "a" / "final" / name))
        b = load_file(str(tmp_path / "b" / "final" / name))
        assert a.keys() == b.keys()
        for key, tensor in a.items():
            assert (tensor - b[key]).abs().max().item() <= 1e-6, (name, key)
    moved = load_file(str(tmp_path / "a" / "final" / "heads.safetensors"))
    assert moved["heads.ner.classifier.weight"].abs().max() > 0
