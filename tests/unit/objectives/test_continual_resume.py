"""A second stage with ewc and distill, killed mid-epoch and resumed, ends as if uninterrupted.

Resuming re-runs ``setup`` before the checkpoint is loaded: the EWC anchor and the distillation
teacher are the stage's starting model again, and the Fisher is reloaded from the run folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

import domaintune.training.loop as loop
from tests.conftest import recipe_dict, write_conll
from tests.unit.objectives.continual_data import write_org_loc


def test_ewc_and_distill_stage_resumes_exactly(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domaintune.api import run
    from domaintune.config.recipe import Recipe

    orgloc = write_org_loc(tmp_path / "orgloc", n_train=24)
    first = recipe_dict(tiny_bert, orgloc, "token_classification", epochs=1)
    run(Recipe.model_validate(first), output_dir=tmp_path / "first")

    disease = write_conll(tmp_path / "disease", n_train=48)
    recipe = recipe_dict(tiny_bert, disease, "token_classification", epochs=2, checkpoint_every=4)
    recipe["model"] = {"init_from": str(tmp_path / "first")}
    del recipe["data"]["validation"]  # type: ignore[attr-defined]
    recipe["data"]["split"] = {"validation": 0.0}  # type: ignore[index]  # final = last step
    recipe["objectives"] = [
        {"name": "ewc", "weight": 50.0, "data": [str(orgloc["train"])], "samples": 8},
        {"name": "distill", "weight": 1.0},
    ]
    second = Recipe.model_validate(recipe)
    run(second, output_dir=tmp_path / "straight")

    original = loop.save_checkpoint

    def save_then_die(*args: object, **kwargs: object) -> Path:
        original(*args, **kwargs)  # type: ignore[arg-type]
        raise Interrupted  # right after the first checkpoint, mid-epoch

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        run(second, output_dir=tmp_path / "resumed")
    monkeypatch.setattr(loop, "save_checkpoint", original)
    assert (tmp_path / "resumed" / "fisher.safetensors").is_file()
    assert not (tmp_path / "resumed" / "final").exists()
    result = run(second, output_dir=tmp_path / "resumed", resume=True)
    assert result.steps == 12

    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert (tensor - b[name]).abs().max().item() <= 1e-6, name
    fisher_a = load_file(str(tmp_path / "straight" / "fisher.safetensors"))
    fisher_b = load_file(str(tmp_path / "resumed" / "fisher.safetensors"))
    assert all((fisher_a[k] - fisher_b[k]).abs().max() == 0 for k in fisher_a)


class Interrupted(Exception):
    """Stands for a crash after a checkpoint."""
