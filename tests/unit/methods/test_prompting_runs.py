"""``method: prompting`` end to end: train (or not), save, reload, evaluate and predict alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from domaintune import api
from domaintune.config import load_recipe
from domaintune.errors import ConfigError
from tests.conftest import recipe_dict
from tests.unit.tasks.test_prompting import TEXTS, prompt_task, tiny_bert_mlm  # noqa: F401

DECODER_WORDS = {"negative": ["bad", "weak result"], "positive": "good sign"}


def run_prompting(
    model: Path, data: dict[str, Path], tmp_path: Path, *overrides: str, **method: Any
) -> tuple[Any, dict[str, Any]]:
    recipe = load_recipe(
        {**recipe_dict(model, data), "method": {"name": "prompting", **method}},
        ["train.max_steps=6", "train.eval_every=3", *overrides],
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    saved = json.loads((result.run_dir / "final" / api.RUN_FILE).read_text(encoding="utf-8"))
    return result, saved


def check_reload(result: Any, data: dict[str, Path]) -> list[dict[str, Any]]:
    """The reloaded run reproduces its test metrics and predicts known labels."""
    scores = api.evaluate(result.run_dir, data["test"])
    assert scores["accuracy"] == pytest.approx(result.test["accuracy"])
    assert scores["f1_macro"] == pytest.approx(result.test["f1_macro"])
    rows = api.predict(result.run_dir, TEXTS)
    assert all(r["label"] in ("negative", "positive") for r in rows)
    assert all(sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) for r in rows)
    return rows


@pytest.mark.parametrize(
    ("fixture", "method", "scoring"),
    [
        ("tiny_bert", {}, "similarity"),  # no MLM head in the checkpoint: auto → similarity
        ("tiny_bert_mlm", {"template": "[MASK] : {text}"}, "cloze"),
        ("tiny_bert", {"scoring": "cloze_embeddings", "adapter": "lora"}, "cloze_embeddings"),
        ("tiny_llama", {"verbalizer": DECODER_WORDS, "adapter": "lora"}, "label_likelihood"),
    ],
    ids=["similarity", "cloze", "cloze-embeddings-lora", "decoder-lora"],
)
def test_finetuned_prompting_run_reloads(
    fixture: str,
    method: dict[str, Any],
    scoring: str,
    cls_data: dict[str, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    model = request.getfixturevalue(fixture)
    result, saved = run_prompting(model, cls_data, tmp_path, **method)
    assert result.steps == 6
    assert saved["state"]["prompt"]["scoring"] == scoring
    assert saved["method"]["merged"] is True  # LoRA is merged into final/
    train = json.loads((result.run_dir / "results.json").read_text())["train"]
    assert train["trainable_parameters"] > 0
    check_reload(result, cls_data)


def test_in_context_run_trains_nothing_and_keeps_its_demonstrations(
    tiny_llama: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    result, saved = run_prompting(
        tiny_llama,
        cls_data,
        tmp_path,
        "data.max_length=128",  # the tiny Llama's positions: 4 demonstrations and the text
        mode="in_context",
        demonstrations=2,
        verbalizer=DECODER_WORDS,
    )
    assert result.steps == 0
    demos = saved["state"]["prompt"]["demonstrations"]
    assert sorted(d["label"] for d in demos) == ["negative", "negative", "positive", "positive"]
    rows = check_reload(result, cls_data)
    # The same probabilities as the untrained model scored through the saved prompt.
    task, tok = prompt_task(tiny_llama, "llama", mode="in_context", verbalizer=DECODER_WORDS)
    task.demonstrations = demos
    task.bind("llama", tok)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    batch = task.collate(task.encode([{"text": t} for t in TEXTS], tok, 128).features, 0)
    with torch.no_grad():
        probs = np.stack(task.outputs(task.wrap(model)(**batch).logits, batch))
    got = np.array([[r["probabilities"][label] for label in task.labels] for r in rows])
    np.testing.assert_allclose(got, probs, atol=2e-6)


def test_zero_shot_run_keeps_the_pretrained_weights(
    tiny_bert_mlm: Path,  # noqa: F811
    cls_data: dict[str, Path],
    tmp_path: Path,
) -> None:
    from safetensors.torch import load_file

    result, saved = run_prompting(tiny_bert_mlm, cls_data, tmp_path, mode="zero_shot")
    assert result.steps == 0 and saved["state"]["prompt"]["calibrate"] is True
    before = load_file(str(tiny_bert_mlm / "model.safetensors"))
    after = load_file(str(result.run_dir / "final" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before if k in after)
    check_reload(result, cls_data)


def test_prompting_runs_are_not_exported(
    tiny_bert: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    result, _ = run_prompting(tiny_bert, cls_data, tmp_path, mode="zero_shot")
    with pytest.raises(ConfigError, match="prompting"):
        api.export(result.run_dir, "safetensors")


def test_prompting_needs_single_label_classification(
    tiny_bert: Path, cls_data: dict[str, Path]
) -> None:
    recipe = load_recipe(
        {
            **recipe_dict(tiny_bert, cls_data),
            "task": {"name": "classification", "problem": "multi_label"},
            "method": {"name": "prompting"},
        }
    )
    with pytest.raises(ConfigError, match="single_label"):
        api.prepare_data(recipe)
