"""Multi-label, regression and decoder (pad = eos, last-token pooling) classification."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from domaintune import api
from domaintune.config import load_recipe
from tests.conftest import WORDS, recipe_dict


def _rows(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(WORDS[:30]) for _ in range(rng.randint(4, 20))] for _ in range(n)]


def _write(folder: Path, make: object) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, seed in (("train", 96, 0), ("dev", 32, 1), ("test", 32, 2)):
        path = folder / f"{split}.jsonl"
        path.write_text(
            "".join(
                json.dumps(make(words)) + "\n"  # type: ignore[operator]
                for words in _rows(n, seed)
            )
        )
        paths[split] = path
    return paths


def test_multi_label_with_tuned_threshold(tiny_bert: Path, tmp_path: Path) -> None:
    def make(words: list[str]) -> dict[str, object]:
        labels = [
            name for name, cue in (("disease", "cancer"), ("money", "profit")) if cue in words
        ] or ["none"]
        return {"text": " ".join(words), "label": labels}

    data = _write(tmp_path / "ml", make)
    recipe = load_recipe(
        {
            **recipe_dict(tiny_bert, data, epochs=6, lr=5e-3),
            "task": {"name": "classification", "problem": "multi_label"},
        }
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    assert 0.05 <= result.test["threshold"] <= 0.95
    assert result.test["f1_micro"] > 0.6 and "subset_accuracy" in result.test
    predictions = api.predict(result.run_dir, ["the cancer and profit", "a mild fever"])
    assert all(isinstance(p["labels"], list) for p in predictions)


def test_regression(tiny_bert: Path, tmp_path: Path) -> None:
    data = _write(
        tmp_path / "reg",
        lambda w: {"text": " ".join(w), "label": float(w.count("good") - w.count("bad"))},
    )
    recipe = load_recipe(
        {
            **recipe_dict(tiny_bert, data, epochs=8, lr=5e-3),
            "task": {"name": "classification", "problem": "regression"},
        }
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    assert set(result.test) == {"mse", "mae", "pearson", "spearman"}
    assert np.isfinite(result.test["mse"]) and result.test["pearson"] > 0.3


def test_decoder_classification_uses_eos_as_pad(
    tiny_llama: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = load_recipe(
        {**recipe_dict(tiny_llama, cls_data, epochs=3, lr=3e-3), "method": {"name": "lora", "r": 4}}
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    loaded = api.load_run(result.run_dir)
    assert loaded.tokenizer.pad_token == "</s>"
    assert loaded.model.config.pad_token_id == loaded.tokenizer.pad_token_id
    assert type(loaded.model).__name__ == "LlamaForSequenceClassification"
    # Right padding must not change a text's prediction (pooling takes the last real token).
    short = "the good result"
    alone = api.predict(result.run_dir, [short])[0]["probabilities"]
    padded = api.predict(result.run_dir, [short, " ".join(["market"] * 40)])[0]["probabilities"]
    for label, value in alone.items():
        assert padded[label] == pytest.approx(value, abs=1e-4)
