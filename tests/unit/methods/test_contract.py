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
from domaintune.methods.layers import HEAD_NAMES, block_list, embedding_module
from domaintune.models.load import load_model, load_tokenizer, resolve_source
from domaintune.runs import RunFolder
from domaintune.training.loop import LoopData, train_loop
from tests.conftest import recipe_dict

METHOD_CASES: list[dict[str, Any]] = [
    {"name": "full"},
    {"name": "freeze", "embeddings": True, "layers": 1},
    {"name": "freeze", "embeddings": False, "layers": 0, "layerwise_lr_decay": 0.8},
    {"name": "freeze", "embeddings": False, "gradual_unfreezing": True, "unfreeze_every": 2},
    {"name": "bitfit"},
    {"name": "lora", "r": 4, "alpha": 8, "target_modules": None, "train_norms": False},
    {"name": "lora", "r": 4, "rslora": True, "dora": True, "target_modules": "all-linear"},
    {"name": "adalora", "r": 2, "init_r": 4, "target_modules": None},
    {"name": "ia3", "target_modules": ["key", "value", "output.dense"]},
    {"name": "adapter", "placement": "houlsby", "reduction_factor": 4},
    {"name": "adapter", "placement": "pfeiffer", "reduction_factor": 8},
]


def _linears(model: torch.nn.Module, suffixes: set[str] | None) -> list[torch.nn.Linear]:
    """Linear layers whose name ends with one of ``suffixes`` (None: all but the task head)."""
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.split(".")[0] in HEAD_NAMES:
            continue
        if suffixes is None or any(name == s or name.endswith("." + s) for s in suffixes):
            found.append(module)
    return found


def promised_trainable(cfg: Any, model: torch.nn.Module, before: dict[str, torch.Tensor]) -> int:
    """The parameter count each method promises to train, computed from the base model."""
    total = sum(p.numel() for p in before.values())
    head = sum(p.numel() for n, p in before.items() if n.split(".")[0] in HEAD_NAMES)
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
    if cfg.name == "bitfit":
        return head + sum(
            p.numel()
            for n, p in before.items()
            if n.endswith(".bias") and n.split(".")[0] not in HEAD_NAMES
        )
    if cfg.name == "ia3":
        # (IA)^3: one vector per target; feed-forward targets scale their input, others output.
        return head + sum(
            m.in_features
            if any(name.endswith(f) for f in cfg.feedforward_modules or ["output.dense"])
            else m.out_features
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)
            and any(name.endswith(t) for t in cfg.target_modules)
            and name.split(".")[0] not in HEAD_NAMES
        )
    if cfg.name == "adapter":
        blocks = list(block_list(model))
        per_block = 2 if cfg.placement == "houlsby" else 1
        hidden = model.config.hidden_size
        bottleneck = hidden // cfg.reduction_factor
        adapters = len(blocks) * per_block * (2 * hidden * bottleneck + bottleneck + hidden)
        norms = sum(
            p.numel()
            for block in blocks
            for m in block.modules()
            if "Norm" in type(m).__name__  # LayerNorm, Llama's RMSNorm
            for p in m.parameters()
        )
        return head + adapters + norms
    # LoRA family (peft's BERT default targets: query, value)
    default = {"query", "value"} if "Bert" in type(model).__name__ else {"q_proj", "v_proj"}
    targets = None if cfg.target_modules == "all-linear" else set(cfg.target_modules or default)
    adapted = _linears(model, targets)
    if cfg.name == "adalora":  # A (r x in), B (out x r), E (r x 1) at the initial rank
        return head + sum(cfg.init_r * (m.in_features + m.out_features + 1) for m in adapted)
    dora = sum(m.out_features for m in adapted) if cfg.dora else 0  # DoRA's magnitude vector
    norms = 0
    if getattr(cfg, "train_norms", False):  # every LayerNorm / RMSNorm outside the head
        norms = sum(
            p.numel()
            for name, m in model.named_modules()
            if "Norm" in type(m).__name__ and name.split(".")[0] not in HEAD_NAMES
            for p in m.parameters(recurse=False)
        )
    return head + dora + norms + sum(cfg.r * (m.in_features + m.out_features) for m in adapted)


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
    model.config.pad_token_id = tokenizer.pad_token_id
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
    check_contract(tiny_bert, data, task, method, tmp_path)


DECODER_CASES: list[dict[str, Any]] = [
    {"name": "freeze", "embeddings": False, "gradual_unfreezing": True, "unfreeze_every": 2},
    {"name": "lora", "r": 4, "dora": True},
    {"name": "adalora", "r": 2, "init_r": 4},
    {
        "name": "ia3",
        "target_modules": ["k_proj", "v_proj", "down_proj"],
        "feedforward_modules": ["down_proj"],
    },
    {"name": "adapter", "placement": "houlsby", "reduction_factor": 4},
]


@pytest.mark.parametrize(
    "method", DECODER_CASES, ids=lambda m: "-".join(str(v) for v in m.values())
)
def test_method_contract_on_a_decoder(
    method: dict[str, Any], tiny_llama: Path, cls_data: dict[str, Path], tmp_path: Path
) -> None:
    """The same contract on a Llama sequence classifier (decoder support, docs/methods.md)."""
    check_contract(tiny_llama, cls_data, "classification", method, tmp_path)


def test_bitfit_refuses_a_model_without_biases(tiny_llama: Path, cls_data: dict[str, Path]) -> None:
    recipe = load_recipe({**recipe_dict(tiny_llama, cls_data), "method": {"name": "bitfit"}})
    model = load_model(resolve_source(recipe.model), __import__("transformers").AutoModel)
    with pytest.raises(ValueError, match="no bias parameters"):
        METHODS["bitfit"].apply(model, recipe.method)


def check_contract(
    tiny: Path, data: dict[str, Path], task: str, method: dict[str, Any], tmp_path: Path
) -> None:
    """Train 6 steps and check every promise of DESIGN.md section 8."""
    recipe, task_obj, tokenizer, model, parts = build(tiny, data, task, method, tmp_path)
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
    callbacks = module.callbacks(model, recipe.method) if hasattr(module, "callbacks") else []
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
        callbacks=callbacks,
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
    full_size = sum(p.numel() for p in before.values()) * 4
    if hasattr(module, "save_adapter"):  # the adapter-only checkpoint holds the trained part
        module.save_adapter(model, tmp_path / "adapter")
        size = sum(f.stat().st_size for f in (tmp_path / "adapter").iterdir())
        assert size < 4 * expected + 64_000, "adapter checkpoint holds more than it trains"
        assert size < full_size
    exported = module.export(model)
    saved = tmp_path / "saved"
    if exported is not None:
        with torch.no_grad():
            merged = exported(**inputs).logits
        torch.testing.assert_close(merged, reference, atol=1e-5, rtol=1e-5)  # merge keeps logits
        exported.save_pretrained(str(saved))
        reloaded = task_obj.auto_class().from_pretrained(str(saved))
    else:  # cannot merge: the base model + the adapter checkpoint reproduce the logits
        module.base_model(model).save_pretrained(str(saved))
        plain = task_obj.auto_class().from_pretrained(str(saved))
        reloaded = module.load_adapter(plain, tmp_path / "adapter", recipe.method)
        merged = reference
    reloaded.eval()
    with torch.no_grad():
        again = reloaded(**inputs).logits
    torch.testing.assert_close(again, merged, atol=1e-6, rtol=1e-6)  # save -> load


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
