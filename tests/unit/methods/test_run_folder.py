"""Every method's run folder reloads for evaluate/predict with the metrics training reported.

Methods that merge save ``final/`` as a plain transformers model; the others save the base model
with ``final/adapter/`` beside it. Either way ``evaluate`` must reproduce the test metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domaintune import api
from domaintune.config import load_recipe
from tests.conftest import recipe_dict

RUN_CASES: list[dict[str, Any]] = [
    {"name": "bitfit"},
    {"name": "lora", "r": 4, "target_modules": "all-linear", "modules_to_save": ["pooler"]},
    {"name": "adalora", "r": 2, "init_r": 4},
    {"name": "ia3"},
    {"name": "adapter", "placement": "houlsby"},
    {"name": "freeze", "embeddings": False, "gradual_unfreezing": True, "unfreeze_every": 2},
]


@pytest.mark.parametrize("method", RUN_CASES, ids=lambda m: m["name"])
def test_run_folder_reloads_every_method(
    method: dict[str, Any], tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = load_recipe(
        {**recipe_dict(tiny_bert, cls_data), "method": method}, ["train.max_steps=8"]
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    final = result.run_dir / "final"
    saved = json.loads((final / api.RUN_FILE).read_text(encoding="utf-8"))
    assert saved["method"]["config"]["name"] == method["name"]
    assert saved["method"]["merged"] == (method["name"] != "adapter")
    if method["name"] not in {"freeze"}:
        assert (final / api.ADAPTER_DIR).is_dir()
    scores = api.evaluate(result.run_dir, cls_data["test"])
    assert scores["accuracy"] == pytest.approx(result.test["accuracy"])
    assert scores["f1_macro"] == pytest.approx(result.test["f1_macro"])
    if not saved["method"]["merged"]:  # chaining from it would silently drop the adapter
        from domaintune.errors import ModelError
        from domaintune.models.load import resolve_source

        chained = recipe.model.model_copy(update={"init_from": str(result.run_dir)})
        with pytest.raises(ModelError, match="cannot be merged"):
            resolve_source(chained)
    rows = api.predict(result.run_dir, ["the patient has a severe fever"])
    assert (
        rows[0]["label"]
        in json.loads((result.run_dir / "results.json").read_text())["data"]["labels"]
    )


def test_peft_adapter_folder_loads_with_peft(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    """final/adapter/ is peft's own format: PeftModel.from_pretrained gives the merged logits."""
    import peft
    import torch
    from transformers import AutoModelForSequenceClassification

    recipe = load_recipe(
        {**recipe_dict(tiny_bert, cls_data), "method": {"name": "lora", "r": 4}},
        ["train.max_steps=4"],
    )
    run_dir = api.run(recipe, output_dir=tmp_path / "run").run_dir
    merged = AutoModelForSequenceClassification.from_pretrained(str(run_dir / "final")).eval()
    base = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_bert), num_labels=merged.config.num_labels
    )
    adapted = peft.PeftModel.from_pretrained(base, str(run_dir / "final" / "adapter")).eval()
    ids = torch.tensor([[2, 6, 7, 3]])
    with torch.no_grad():
        torch.testing.assert_close(adapted(input_ids=ids).logits, merged(input_ids=ids).logits)
