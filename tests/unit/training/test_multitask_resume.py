"""Exact resume of a multi-task run: killed mid-epoch and resumed, it ends with the same weights."""

from __future__ import annotations

from pathlib import Path

import yaml
from safetensors.torch import load_file

from domaintune import api
from tests.resume import assert_same_tensors, train_until_killed
from tests.unit.training.test_multitask_run import multitask_recipe


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

    train_until_killed(path, tmp_path / "b", checkpoints=6)
    # epochs of 4 batches (2 a task): the kill after step 6 came mid-way through the second
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["step-6"]
    # in this process (only the kill needed its own): the uninterrupted run, then the resume
    api.run(path, output_dir=tmp_path / "a")
    resumed = api.run(path, output_dir=tmp_path / "b", resume=True)
    assert resumed.steps == 8
    for name in ("model.safetensors", "heads.safetensors"):
        assert_same_tensors(tmp_path / "a" / "final" / name, tmp_path / "b" / "final" / name)
    moved = load_file(str(tmp_path / "a" / "final" / "heads.safetensors"))
    assert moved["heads.ner.classifier.weight"].abs().max() > 0
