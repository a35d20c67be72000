"""The CUDA path of the loop: bf16 autocast, training and evaluation on the GPU.

Run with ``pytest -m gpu`` on a machine with a CUDA GPU (skipped, and deselected, elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from domaintune import api
from domaintune.config import load_recipe
from tests.conftest import recipe_dict, write_classification, write_conll

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _spy_autocast(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record the autocast dtype in force at every forward of the model's first layer norm."""
    seen: list[Any] = []
    original = torch.nn.LayerNorm.forward

    def forward(self: torch.nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cuda"):
            seen.append(torch.get_autocast_dtype("cuda"))
        seen.append(x.device.type)
        return original(self, x)

    monkeypatch.setattr(torch.nn.LayerNorm, "forward", forward)
    return seen


@pytest.mark.parametrize("task", ["classification", "token_classification"])
def test_auto_precision_trains_in_bf16_on_the_gpu(
    task: str, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert api.resolve_precision("auto") == "bf16"
    data = (
        write_conll(tmp_path / "ner", n_train=256)
        if task == "token_classification"
        else write_classification(tmp_path / "cls", n_train=256)
    )
    seen = _spy_autocast(monkeypatch)
    recipe = recipe_dict(
        tiny_bert, data, task=task, epochs=8, lr=3e-3, batch_size=16, precision="auto"
    )
    result = api.run(load_recipe(recipe), output_dir=tmp_path / "run")
    assert torch.bfloat16 in seen and "cuda" in seen and "cpu" not in seen
    metric = "entity_f1" if task == "token_classification" else "accuracy"
    assert result.test[metric] > 0.8  # the synthetic rule is easy: the model must learn it
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert saved["train"]["steps"] == result.steps > 0
    # The final model is saved in fp32 (autocast never changes the master weights).
    from safetensors.torch import load_file

    weights = load_file(str(result.run_dir / "final" / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values())


def test_fp32_is_honoured_on_the_gpu(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy_autocast(monkeypatch)
    data = write_classification(tmp_path / "cls")
    recipe = recipe_dict(tiny_bert, data, epochs=1)  # recipe_dict pins fp32
    api.run(load_recipe(recipe), output_dir=tmp_path / "run")
    assert "cuda" in seen and torch.bfloat16 not in seen


def test_lora_and_decoder_classification_on_the_gpu(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_classification(tmp_path / "cls", n_train=128)
    recipe = recipe_dict(tiny_llama, data, epochs=2, lr=1e-3, precision="auto")
    recipe["method"] = {"name": "lora", "r": 4, "alpha": 8}
    result = api.run(load_recipe(recipe), output_dir=tmp_path / "run")
    assert (result.run_dir / "final" / "model.safetensors").is_file()
    assert 0.0 <= result.test["accuracy"] <= 1.0
    rows = api.predict(result.run_dir, ["the patient was good", "bad result"])
    assert len(rows) == 2 and all("label" in r for r in rows)
