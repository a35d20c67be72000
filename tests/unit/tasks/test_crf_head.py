"""``head: crf`` wired into token classification: wrapping, state, training, reload and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from domaintune import api
from domaintune.config import load_recipe
from domaintune.config.sections import TokenClassificationTaskConfig
from domaintune.models.crf import CRFTagger
from domaintune.tasks import build_task
from domaintune.training.optim import boost_parameters, build_optimizer
from tests.conftest import recipe_dict
from tests.resume import run_cli, train_until_killed


def _recipe(model: Path, data: dict[str, Path], method: dict[str, Any], **train: object) -> Any:
    recipe = recipe_dict(model, data, "token_classification", **train)
    recipe["task"] = {"name": "token_classification", "head": "crf"}
    recipe["method"] = method
    return recipe


def _prepared(model: Path, data: dict[str, Path], method: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The task (labels fitted), tokenizer and transformers model of a crf recipe."""
    from domaintune.models.load import load_model, load_tokenizer, resolve_source

    recipe = load_recipe(_recipe(model, data, method))
    task, raw = api.prepare_data(recipe)
    source = resolve_source(recipe.model)
    tokenizer = load_tokenizer(source)
    encoded = task.encode(raw.splits["train"][:4], tokenizer, 64)
    net = load_model(source, task.auto_class(), **task.model_kwargs())
    return task, net, task.collate(encoded.features, tokenizer.pad_token_id, training=True)


def test_wrapper_shares_the_task_crf_and_keeps_word_mask_from_the_model(
    tiny_bert: Path, ner_data: dict[str, Path]
) -> None:
    task, net, batch = _prepared(tiny_bert, ner_data, {"name": "full"})
    first, second = task.wrap(net), task.wrap(net)
    assert isinstance(first, CRFTagger) and first.crf is second.crf is task.crf
    assert batch["word_mask"].dtype == torch.bool
    assert torch.equal(batch["word_mask"], batch["labels"] != -100)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    net.eval()
    with torch.no_grad():
        logits = first(**inputs).logits
        plain = net(**{k: v for k, v in inputs.items() if k != "word_mask"}).logits
    assert torch.equal(logits, plain)
    total, count = task.loss(logits, batch)
    assert torch.isfinite(total) and count == (batch["labels"] != -100).sum()
    lengths = batch["attention_mask"].sum(-1).tolist()
    assert [len(o) for o in task.outputs(logits, batch)] == lengths


def test_state_round_trip_restores_the_learned_scores(
    tiny_bert: Path, ner_data: dict[str, Path]
) -> None:
    task, _, _ = _prepared(tiny_bert, ner_data, {"name": "full"})
    with torch.no_grad():
        for param in task.crf.parameters():
            param.copy_(torch.randn(param.shape))
    state = json.loads(json.dumps(task.state()))
    again = build_task(task.cfg, state)
    for (name, a), (_, b) in zip(
        task.crf.named_parameters(), again.crf.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name
    assert torch.equal(again.crf.allowed, task.crf.allowed)
    softmax = build_task(
        TokenClassificationTaskConfig(name="token_classification", head="softmax"), state
    )
    assert "crf" not in softmax.state()


def test_crf_trains_with_method_param_groups(tiny_bert: Path, ner_data: dict[str, Path]) -> None:
    from domaintune.methods import freeze

    method = {"name": "freeze", "embeddings": True, "layers": 1, "layerwise_lr_decay": 0.5}
    task, net, _ = _prepared(tiny_bert, ner_data, method)
    recipe = load_recipe(_recipe(tiny_bert, ner_data, method))
    net = freeze.apply(net, recipe.method)
    groups = freeze.param_groups(net, recipe.method, recipe.train.lr)
    optimizer = build_optimizer(task.wrap(net), recipe.train, groups)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for param in task.crf.parameters():
        assert param.requires_grad and lrs[id(param)] == recipe.train.lr
    # crf_lr_multiplier: the CRF gets its own group, with or without the method's groups.
    for given in (groups, None):
        boosted = boost_parameters(task.wrap(net), given, list(task.crf.parameters()), 10.0, 1e-3)
        optimizer = build_optimizer(task.wrap(net), recipe.train, boosted)
        lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
        assert all(lrs[id(p)] == pytest.approx(1e-2) for p in task.crf.parameters())
        assert len(lrs) == sum(1 for p in task.wrap(net).parameters() if p.requires_grad)


@pytest.mark.parametrize("method", [{"name": "full"}, {"name": "lora", "r": 4}], ids=str)
def test_crf_run_reloads_to_the_same_metrics(
    method: dict[str, Any], tiny_bert: Path, ner_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = load_recipe(_recipe(tiny_bert, ner_data, method, max_steps=12, eval_every=6))
    result = api.run(recipe, output_dir=tmp_path / "run")
    run = result.run_dir
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    saved = json.loads((run / "final" / "domaintune.json").read_text(encoding="utf-8"))
    crf = saved["state"]["crf"]
    assert any(v != 0.0 for row in crf["transitions"] for v in row), "the CRF did not train"
    # The saved scores are those of the best weights, which the loop reloaded at the end.
    best = load_file(str(run / "best" / "model.safetensors"))
    for name in ("start", "end", "transitions"):
        assert torch.equal(best[f"crf.{name}"], torch.tensor(crf[name])), name
    loaded = api.load_run(run)
    for name in ("start", "end", "transitions"):
        assert torch.equal(getattr(loaded.task.crf, name), torch.tensor(crf[name])), name
    labels = len(saved["state"]["labels"])
    assert results["train"]["trainable_parameters"] > labels * labels + 2 * labels

    scores = api.evaluate(run, ner_data["test"])
    floats = {k: v for k, v in results["test"].items() if isinstance(v, float)}
    assert floats and all(scores[k] == v for k, v in floats.items()), (scores, floats)
    rows = api.predict(run, ["the patient has cancer syndrome", "a mild fever"])
    for row in rows:
        for entity in row["entities"]:
            assert row["text"][entity["start"] : entity["end"]] == entity["text"]


def test_crf_learns_the_toy_entities(
    tiny_bert: Path, ner_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = load_recipe(_recipe(tiny_bert, ner_data, {"name": "full"}, epochs=4, lr=3e-3))
    result = api.run(recipe, output_dir=tmp_path / "run")
    assert result.test["entity_f1"] > 0.8, result.test


def test_sigkill_then_resume_matches_uninterrupted_with_crf(
    tiny_bert: Path, ner_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = _recipe(tiny_bert, ner_data, {"name": "full"}, epochs=2, checkpoint_every=5)
    del recipe["data"]["validation"]
    recipe["data"]["split"] = {"validation": 0.0}  # no eval: final = last step
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    straight = run_cli("train", str(path), "-o", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    train_until_killed(path, tmp_path / "resumed", checkpoints=2)
    resumed = run_cli("train", str(path), "-o", str(tmp_path / "resumed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "step 10" in resumed.stderr

    def final(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        folder = tmp_path / name / "final"
        state = json.loads((folder / "domaintune.json").read_text(encoding="utf-8"))["state"]
        return load_file(str(folder / "model.safetensors")), state["crf"]

    (a, crf_a), (b, crf_b) = final("straight"), final("resumed")
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert (tensor - b[name]).abs().max().item() <= 1e-6, name
    for name in ("start", "end", "transitions"):
        diff = (torch.tensor(crf_a[name]) - torch.tensor(crf_b[name])).abs().max().item()
        assert diff <= 1e-6, name
    assert any(v != 0.0 for row in crf_a["transitions"] for v in row)


def test_crf_is_the_default_head_and_a_resolved_recipe_keeps_softmax() -> None:
    """The comparison's best head is the default; recipes resolved before keep their head."""
    import yaml

    from domaintune.config.load import dump_recipe, load_recipe

    assert TokenClassificationTaskConfig(name="token_classification").head == "crf"
    recipe = {
        "task": {"name": "token_classification", "head": "softmax"},
        "model": {"name": "minilm"},
        "data": {"train": "a.conll", "format": "conll"},
    }
    resolved = yaml.safe_load(dump_recipe(load_recipe(recipe)))
    assert resolved["task"]["head"] == "softmax"
    assert load_recipe(resolved).task.head == "softmax"
