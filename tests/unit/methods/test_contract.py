"""Method contract (DESIGN.md section 8): every method on every task it supports trains, keeps
frozen parameters bitwise equal, trains exactly the promised parameters, and saves, reloads and
merges to identical logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from domaintune import api
from domaintune.config import load_recipe
from domaintune.methods import METHODS
from domaintune.methods.layers import block_list, embedding_module
from domaintune.models.load import load_model, load_tokenizer, resolve_source
from domaintune.runs import RunFolder
from domaintune.training.loop import LoopData, train_loop
from tests.conftest import recipe_dict

METHOD_CASES: list[dict[str, Any]] = [
    {"name": "full"},
    {"name": "freeze", "embeddings": True, "layers": 1},
    {"name": "freeze", "embeddings": False, "layers": 0, "layerwise_lr_decay": 0.8},
    {"name": "lora", "r": 4, "alpha": 8},
]


def promised_trainable(cfg: Any, model: torch.nn.Module, before: dict[str, torch.Tensor]) -> int:
    """The parameter count each method promises to train, computed from the base model."""
    total = sum(p.numel() for p in before.values())
    if cfg.name == "full":
        return total
    if cfg.name == "freeze":
        frozen = 0
        if cfg.embeddings:
            frozen += sum(p.numel() for p in embedding_module(model).parameters())
        frozen += sum(
            p.numel() for layer in list(block_list(model))[: cfg.layers] for p in layer.parameters()
        )
        return total - frozen
    # lora: r * (in + out) per adapted Linear (peft's BERT default: query, value) + the head
    adapted = [
        m
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in {"query", "value"}
    ]
    head = sum(p.numel() for n, p in before.items() if n.startswith("classifier"))
    return sum(cfg.r * (m.in_features + m.out_features) for m in adapted) + head


def build(
    tiny: Path, data: dict[str, Path], task: str, method: dict[str, Any], tmp_path: Path
) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    recipe = load_recipe(
        {**recipe_dict(tiny, data, task), "method": method},
        ["train.max_steps=6", "train.eval_every=3"],
    )
    task_obj, raw = api.prepare_data(recipe)
    source = resolve_source(recipe.model)
    tokenizer = load_tokenizer(source)
    encoded = {k: task_obj.encode(v, tokenizer, 64) for k, v in raw.splits.items()}
    torch.manual_seed(0)
    model = load_model(source, task_obj.auto_class(), **task_obj.model_kwargs())
    return recipe, task_obj, tokenizer, model, {"encoded": encoded, "raw": raw}


@pytest.mark.parametrize("task", ["classification", "token_classification"])
@pytest.mark.parametrize("method", METHOD_CASES, ids=lambda m: "-".join(str(v) for v in m.values()))
def test_method_contract(
    task: str,
    method: dict[str, Any],
    tiny_bert: Path,
    cls_data: dict[str, Path],
    ner_data: dict[str, Path],
    tmp_path: Path,
) -> None:
    data = ner_data if task == "token_classification" else cls_data
    recipe, task_obj, tokenizer, model, parts = build(tiny_bert, data, task, method, tmp_path)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    module = METHODS[recipe.method.name]
    expected = promised_trainable(recipe.method, model, before)
    model = module.apply(model, recipe.method)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected

    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = (
        module.param_groups(model, recipe.method, recipe.train.lr)
        if hasattr(module, "param_groups")
        else None
    )
    accelerator = api.make_accelerator(recipe.train)
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    enc, raw = parts["encoded"], parts["raw"]
    result = train_loop(
        accelerator,
        model,
        task_obj,
        LoopData(enc["train"], tokenizer.pad_token_id, enc["validation"], raw.splits["validation"]),
        recipe.train,
        task_obj.default_metric,
        True,
        run,
        groups,
    )
    assert result.steps == 6
    model.cpu()  # the loop may have moved it to a GPU; compare and run it here
    after = dict(model.named_parameters())
    for name, value in snapshot.items():
        if name in trainable:
            continue
        assert torch.equal(after[name], value), f"frozen parameter {name} changed"
    changed = [n for n in trainable if not torch.equal(after[n], snapshot[n])]
    assert changed, "no trainable parameter changed"

    batch = task_obj.collate(enc["test"].subset(list(range(8))).features, tokenizer.pad_token_id)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        reference = model(**inputs).logits
    exported = module.export(model)
    with torch.no_grad():
        merged = exported(**inputs).logits
    torch.testing.assert_close(merged, reference, atol=1e-5, rtol=1e-5)  # merge keeps logits
    exported.save_pretrained(str(tmp_path / "saved"))
    reloaded = task_obj.auto_class().from_pretrained(str(tmp_path / "saved"))
    reloaded.eval()
    with torch.no_grad():
        again = reloaded(**inputs).logits
    assert torch.equal(again, merged), "save -> load changed the logits"


def test_layerwise_lr_decay_groups(tiny_bert: Path) -> None:
    from domaintune.config import FreezeConfig
    from domaintune.methods import freeze

    model = load_model(
        resolve_source(
            load_recipe(
                {
                    "task": {"name": "classification"},
                    "model": {"name": str(tiny_bert)},
                    "data": {"train": "x.jsonl"},
                }
            ).model
        ),
        __import__("transformers").AutoModelForSequenceClassification,
        num_labels=2,
    )
    cfg = FreezeConfig(name="freeze", embeddings=False, layerwise_lr_decay=0.5)
    groups = freeze.param_groups(freeze.apply(model, cfg), cfg, 1.0)
    lrs = [g["lr"] for g in groups]
    assert lrs == sorted(lrs) and lrs[-1] == 1.0 and lrs[0] == pytest.approx(0.5**3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_full_fine_tuning_with_layerwise_lr_decay(tiny_bert: Path) -> None:
    from domaintune.config import FullConfig
    from domaintune.methods import full

    model = __import__("transformers").AutoModelForSequenceClassification.from_pretrained(
        str(tiny_bert), num_labels=2
    )
    assert full.param_groups(model, FullConfig(name="full"), 1.0) is None
    cfg = FullConfig(name="full", layerwise_lr_decay=0.5)
    groups = full.param_groups(full.apply(model, cfg), cfg, 1.0)
    assert groups is not None
    lrs = [g["lr"] for g in groups]
    assert lrs == sorted(lrs) and lrs[-1] == 1.0 and lrs[0] == pytest.approx(0.5**3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
