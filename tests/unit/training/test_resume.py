"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends with the same weights."""

from __future__ import annotations

from pathlib import Path

import yaml
from safetensors.torch import load_file

from tests.conftest import recipe_dict
from tests.resume import assert_same_tensors, run_cli, train_until_killed


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = recipe_dict(tiny_bert, cls_data, epochs=3, checkpoint_every=5)
    del recipe["data"]["validation"]  # type: ignore[index]
    recipe["data"]["split"] = {"validation": 0.0}  # type: ignore[index]  # no eval: final = last step
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")

    straight = run_cli("train", str(path), "-o", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    train_until_killed(path, tmp_path / "resumed", checkpoints=2)
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert checkpoints == ["step-10"]  # 12 steps an epoch: the kill came mid-epoch
    assert not (tmp_path / "resumed" / "final").exists()

    refused = run_cli("train", str(path), "-o", str(tmp_path / "resumed"))
    assert refused.returncode == 2 and "--resume" in refused.stderr

    resumed = run_cli("train", str(path), "-o", str(tmp_path / "resumed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr and "step 10" in resumed.stderr

    a = assert_same_tensors(
        tmp_path / "straight" / "final" / "model.safetensors",
        tmp_path / "resumed" / "final" / "model.safetensors",
    )
    initial = load_file(str(tiny_bert / "model.safetensors"))
    moved = 0
    for name, tensor in a.items():
        short = name.removeprefix("bert.")
        if short in initial and not (initial[short] - tensor).abs().max().item() < 1e-6:
            moved += 1
    assert moved > 10  # the weights really trained
