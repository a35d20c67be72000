"""Training-engine options: accumulation, SGD + cosine, early stopping, precision checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from domaintune import api
from domaintune.config import load_recipe
from domaintune.errors import ConfigError
from tests.conftest import recipe_dict


def _final(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "final" / "model.safetensors"))


def test_accumulation_equals_the_larger_batch(
    tiny_bert_no_dropout: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    # Without length grouping, batches of 4 are exactly the halves of the batches of 8.
    common = {"group_by_length": False, "epochs": 1}
    big = recipe_dict(tiny_bert_no_dropout, cls_data, batch_size=8, **common)
    small = recipe_dict(
        tiny_bert_no_dropout, cls_data, batch_size=4, gradient_accumulation=2, **common
    )
    a = api.run(load_recipe(big), output_dir=tmp_path / "big")
    b = api.run(load_recipe(small), output_dir=tmp_path / "small")
    assert a.steps == b.steps == 12
    for name, tensor in _final(a.run_dir).items():
        torch.testing.assert_close(tensor, _final(b.run_dir)[name], atol=2e-6, rtol=1e-5)


def test_sgd_with_cosine_schedule_trains(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = recipe_dict(
        tiny_bert, cls_data, optimizer="sgd", scheduler="cosine", lr=0.05, epochs=2
    )
    result = api.run(load_recipe(recipe), output_dir=tmp_path / "run")
    start = load_file(str(tiny_bert / "model.safetensors"))
    moved = _final(result.run_dir)["bert.encoder.layer.1.output.dense.weight"]
    assert (moved - start["encoder.layer.1.output.dense.weight"]).abs().max() > 1e-4


def test_early_stopping_stops_when_the_metric_stalls(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    # lr ~ 0: the validation metric cannot improve after the first evaluation.
    recipe = recipe_dict(
        tiny_bert,
        cls_data,
        lr=1e-12,
        epochs=20,
        eval_every=2,
        early_stopping={"patience": 2},
    )
    result = api.run(load_recipe(recipe), output_dir=tmp_path / "run")
    assert result.stopped_early
    assert result.steps == 6  # evaluations at steps 2 (best), 4 and 6 (two without progress)
    assert result.best_step == 2


def test_bf16_and_fp16_are_refused_without_hardware_support() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="fp16"):
        api.resolve_precision("fp16")
    assert api.resolve_precision("auto") == ("bf16" if api.cpu_has_bf16() else "no")
    if not api.cpu_has_bf16():
        with pytest.raises(ConfigError, match=r"train\.precision: 'bf16'.*→"):
            api.resolve_precision("bf16")


def test_auto_precision_uses_native_cpu_bf16_only(monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    monkeypatch.setattr(api, "cpu_has_bf16", lambda: True)
    assert api.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(api, "cpu_has_bf16", lambda: False)
    assert api.resolve_precision("auto") == "no"  # emulated bf16 would be ~24x slower


def test_bf16_autocast_trains_on_a_cpu_with_bf16_units(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if torch.cuda.is_available() or not api.cpu_has_bf16():
        pytest.skip("needs a CPU with AVX512-BF16/AMX and no GPU")
    dtypes: list[torch.dtype] = []
    linear = torch.nn.Linear.forward

    def spy(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        out = linear(self, x)
        dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    recipe = recipe_dict(tiny_bert, cls_data, precision="auto", epochs=6, lr=3e-3)
    result = api.run(load_recipe(recipe), output_dir=tmp_path / "run")
    assert torch.bfloat16 in dtypes
    assert result.test["accuracy"] > 0.8  # the synthetic rule is easy: bf16 must still learn it
    assert all(t.dtype == torch.float32 for t in _final(result.run_dir).values())


def test_runs_with_different_precisions_in_one_process(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    # Accelerate's state is process-wide: a second run with another precision must still start.
    first = "bf16" if torch.cuda.is_available() or api.cpu_has_bf16() else "fp32"
    for i, precision in enumerate((first, "fp32", first)):
        recipe = recipe_dict(tiny_bert, cls_data, precision=precision, epochs=1)
        api.run(load_recipe(recipe), output_dir=tmp_path / f"run{i}")


def test_a_run_with_very_few_steps_is_told_to_train_longer() -> None:
    """100 examples, batch 16, 3 epochs = 21 steps: measured to learn nothing (docs)."""
    from domaintune.config.sections import TrainConfig
    from domaintune.training.loop import FEW_STEPS, few_steps_advice

    cfg = TrainConfig(epochs=3, batch_size=16)
    advice = few_steps_advice(21, 100, cfg)
    assert advice is not None
    assert "only 21 optimiser steps" in advice and "train.epochs" in advice
    assert "\n" not in advice  # one line
    assert few_steps_advice(FEW_STEPS, 1000, cfg) is None
    assert few_steps_advice(21, 100, TrainConfig(epochs=3, max_steps=21)) is None  # chosen
    # epochs already raised (the few-shot recipe: 24 examples, batch 8, 20 epochs = 60 steps)
    assert few_steps_advice(60, 24, TrainConfig(epochs=20, batch_size=8)) is None
