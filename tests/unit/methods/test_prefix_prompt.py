"""Prefix tuning and prompt tuning (hand-written) on encoders and decoders.

For each method × {tiny BERT classification, tiny BERT token classification, tiny Llama sequence
classification, tiny Llama causal LM}: only the method's parameters and the head train, frozen
parameters stay bitwise equal, padded rows equal unpadded single rows, save → reload gives the
same logits and ``base_model`` gives back the untouched base model. Then end-to-end runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import transformers
from pydantic import TypeAdapter

from domaintune import api
from domaintune.config import load_recipe
from domaintune.config.methods import MethodConfig
from domaintune.methods import METHODS, prefix, soft_prompt
from domaintune.methods.layers import ADAPTER_WEIGHTS, block_list, head_parameters
from domaintune.models.load import quiet_libraries
from tests.conftest import recipe_dict

# kind -> (model fixture, auto class, from_pretrained kwargs, pad id)
KINDS: dict[str, tuple[str, Any, dict[str, Any], int]] = {
    "bert-cls": (
        "tiny_bert",
        transformers.AutoModelForSequenceClassification,
        {"num_labels": 3},
        0,
    ),
    "bert-ner": ("tiny_bert", transformers.AutoModelForTokenClassification, {"num_labels": 3}, 0),
    "llama-cls": (
        "tiny_llama",
        transformers.AutoModelForSequenceClassification,
        {"num_labels": 3},
        1,  # pad = eos, as domaintune sets it for tokenizers without a pad token
    ),
    "llama-clm": ("tiny_llama", transformers.AutoModelForCausalLM, {}, 1),
}
METHOD_CASES: list[dict[str, Any]] = [
    # projected, vocab init
    {"name": "prefix", "num_virtual_tokens": 3, "projection": True, "projection_hidden": 16},
    {"name": "prefix", "num_virtual_tokens": 3, "projection": False, "init": "random"},
    {"name": "prompt_tuning", "num_virtual_tokens": 3},
]
LENGTHS = [7, 4, 5]
# tiny models: 2 layers, 2 key/value heads of 16, hidden 32
LAYERS, HEADS, HEAD_DIM, HIDDEN = 2, 2, 16, 32


def method_config(case: dict[str, Any]) -> Any:
    return TypeAdapter(MethodConfig).validate_python(case)


def load(kind: str, request: pytest.FixtureRequest) -> torch.nn.Module:
    fixture, auto, kwargs, pad = KINDS[kind]
    quiet_libraries()
    torch.manual_seed(0)
    model = auto.from_pretrained(str(request.getfixturevalue(fixture)), **kwargs)
    model.config.pad_token_id = pad
    # The first from_pretrained of a process draws more random numbers than later ones, so
    # seed the head and the method's initialisation here: every load gives the same model.
    torch.manual_seed(1)
    with torch.no_grad():
        for param in head_parameters(model).values():
            param.normal_(0.0, 0.02)
    return model  # type: ignore[no-any-return]


def make_batch(kind: str) -> dict[str, torch.Tensor]:
    """Three right-padded rows; BERT rows start with [CLS] (id 2)."""
    pad = KINDS[kind][3]
    gen = torch.Generator().manual_seed(0)
    ids = torch.full((len(LENGTHS), max(LENGTHS)), pad)
    for i, n in enumerate(LENGTHS):
        ids[i, :n] = torch.randint(5, 30, (n,), generator=gen)
        if kind.startswith("bert"):
            ids[i, 0] = 2
    mask = (torch.arange(ids.shape[1])[None] < torch.tensor(LENGTHS)[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask}


def loss_of(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    if logits.dim() == 2:  # sequence classification
        return F.cross_entropy(
            logits, torch.randint(logits.shape[-1], (logits.shape[0],), generator=gen)
        )
    real = batch["attention_mask"].bool()
    targets = torch.randint(logits.shape[-1], real.shape, generator=gen)
    return F.cross_entropy(logits[real], targets[real])


def promised(case: dict[str, Any], kind: str) -> int:
    """Parameters the method promises to train (its own plus the head)."""
    length = case["num_virtual_tokens"]
    if case["name"] == "prompt_tuning":
        own = length * HIDDEN
    elif case.get("projection", True):
        out = LAYERS * 2 * HEADS * HEAD_DIM
        hidden = case["projection_hidden"]
        own = length * HIDDEN + HIDDEN * hidden + hidden + hidden * out + out
    else:
        own = LAYERS * 2 * HEADS * length * HEAD_DIM
    head = {"bert-cls": HIDDEN * 3 + 3, "bert-ner": HIDDEN * 3 + 3, "llama-cls": HIDDEN * 3}
    return own + head.get(kind, 0)  # a causal LM's head (lm_head) stays frozen


def logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    "case", METHOD_CASES, ids=["prefix-projected", "prefix-direct", "prompt_tuning"]
)
def test_method_contract(
    kind: str, case: dict[str, Any], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    cfg = method_config(case)
    module = METHODS[cfg.name]
    model = module.apply(load(kind, request), cfg)

    # only the method's parameters and the head train
    own = "prefix_encoder." if cfg.name == "prefix" else "soft_prompt."
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(own)} | set(
        head_parameters(model)
    )
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == promised(case, kind)

    # a few steps change them and nothing else
    batch = make_batch(kind)
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        out = model(**batch).logits
        if kind.startswith("bert-ner") or kind == "llama-clm":
            assert out.shape[:2] == batch["input_ids"].shape  # no virtual positions in the output
        loss_of(out, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = dict(model.named_parameters())
    for name, value in snapshot.items():
        if name not in trainable:
            assert torch.equal(after[name], value), f"frozen parameter {name} changed"
    assert all(not torch.equal(after[n], snapshot[n]) for n in trainable if n.startswith(own))

    # padded rows equal the same rows alone, unpadded
    model.eval()
    padded = logits(model, batch)
    for i, n in enumerate(LENGTHS):
        alone = logits(model, {k: v[i : i + 1, :n] for k, v in batch.items()})
        row = padded[i : i + 1] if padded.dim() == 2 else padded[i : i + 1, :n]
        torch.testing.assert_close(row, alone, atol=1e-5, rtol=1e-5)

    # save -> reload gives the same logits
    module.save_adapter(model, tmp_path / "final" / "adapter")
    assert (tmp_path / "final" / "adapter" / ADAPTER_WEIGHTS).is_file()
    plain = module.base_model(model)
    assert module.export(plain) is None
    plain.save_pretrained(str(tmp_path / "final"))
    auto = KINDS[kind][1]
    reloaded = module.load_adapter(
        auto.from_pretrained(str(tmp_path / "final")), tmp_path / "final" / "adapter", cfg
    )
    reloaded.eval()
    torch.testing.assert_close(logits(reloaded, batch), padded, atol=1e-6, rtol=0)

    # base_model gave back the untouched base model (with the trained head)
    assert not any(hasattr(m, "_domaintune_prefix") for m in plain.modules())
    assert not hasattr(plain, "_domaintune_soft_prompt")
    base = plain.base_model
    assert not base._forward_pre_hooks and not base._forward_hooks
    fresh = load(kind, request).eval()
    assert set(plain.state_dict()) == set(fresh.state_dict())
    assert plain.config._attn_implementation == fresh.config._attn_implementation
    with torch.no_grad():
        for name, param in head_parameters(fresh).items():
            param.copy_(dict(plain.named_parameters())[name])
    plain_logits = logits(plain, batch)
    assert torch.equal(plain_logits, logits(fresh, batch))
    assert not torch.equal(plain_logits, padded)  # and the prefix / prompt did change them


@pytest.mark.parametrize("case", METHOD_CASES[1:], ids=["prefix", "prompt_tuning"])
def test_decoders_stay_causal(case: dict[str, Any], request: pytest.FixtureRequest) -> None:
    model = METHODS[case["name"]].apply(load("llama-clm", request), method_config(case)).eval()
    ids = make_batch("llama-clm")["input_ids"][:1]
    changed = ids.clone()
    changed[:, 4:] = 7
    first, second = logits(model, {"input_ids": ids}), logits(model, {"input_ids": changed})
    assert torch.equal(first[:, :4], second[:, :4])  # no position sees the future
    assert not torch.equal(first[:, 4:], second[:, 4:])


@pytest.mark.parametrize("case", METHOD_CASES[::2], ids=["prefix", "prompt_tuning"])
def test_generation_with_kv_cache(case: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """Cached greedy decoding of a left-padded batch equals each row decoded alone."""
    model = METHODS[case["name"]].apply(load("llama-clm", request), method_config(case)).eval()
    model.generation_config.pad_token_id = 1
    ids = torch.tensor([[5, 6, 7, 8], [1, 1, 9, 10]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    options = {"max_new_tokens": 3, "do_sample": False, "output_logits": True}
    batch = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, **options)
    for row, start in ((0, 0), (1, 2)):
        alone = model.generate(ids[row : row + 1, start:], return_dict_in_generate=True, **options)
        for step, expected in zip(batch.logits, alone.logits, strict=True):
            torch.testing.assert_close(step[row : row + 1], expected, atol=1e-4, rtol=1e-4)
        uncached = logits(model, {"input_ids": alone.sequences[:, :-1]})[:, -3:]  # (1, 3, V)
        torch.testing.assert_close(torch.stack(alone.logits, 1), uncached, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["bert-cls", "llama-cls"])
@pytest.mark.parametrize("case", METHOD_CASES[::2], ids=["prefix", "prompt_tuning"])
def test_gradient_checkpointing_gives_the_same_gradients(
    kind: str, case: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    grads = []
    for checkpointing in (False, True):
        model = load(kind, request)
        if checkpointing:
            model.gradient_checkpointing_enable()
        model = METHODS[case["name"]].apply(model, method_config(case))
        model.train()  # transformers checkpoints only while training
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0  # so both runs compute the same
        calls: list[int] = []
        first = next(iter(block_list(model)[0].children()))
        first.register_forward_hook(lambda *args, seen=calls: seen.append(1))
        batch = make_batch(kind)
        loss_of(model(**batch).logits, batch).backward()
        assert len(calls) == (2 if checkpointing else 1)  # recomputed in the backward pass
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5)


def test_prefix_matches_peft_on_a_causal_lm(request: pytest.FixtureRequest) -> None:
    """peft's prefix (which works for Llama causal LMs) gives the same logits.

    peft's prefix sits in the KV cache, so its real tokens get rotary positions P..P+T-1; ours
    keep 0..T-1 (as in the base model), so the comparison passes peft's positions explicitly.
    """
    import peft

    length = 3
    reference = peft.get_peft_model(
        load("llama-clm", request),
        peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=length),
    ).eval()
    table = reference.prompt_encoder["default"].embedding.weight.detach()  # (P, L·2·H·D)
    cfg = method_config({"name": "prefix", "num_virtual_tokens": length, "projection": False})
    ours = prefix.apply(load("llama-clm", request), cfg).eval()
    with torch.no_grad():
        ours.prefix_encoder.prefix.copy_(
            table.view(length, LAYERS * 2, HEADS, HEAD_DIM)
            .permute(1, 2, 0, 3)
            .reshape(LAYERS, 2, HEADS, length, HEAD_DIM)
        )
    batch = make_batch("llama-clm")
    expected = logits(reference, batch)
    positions = (torch.arange(batch["input_ids"].shape[1]) + length)[None]
    got = logits(ours, {**batch, "position_ids": positions})
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    full = {"input_ids": batch["input_ids"][:1]}  # no mask: our causal mask is built explicitly
    got = logits(ours, {**full, "position_ids": positions})
    torch.testing.assert_close(got, logits(reference, full), atol=1e-5, rtol=1e-5)


def test_initialisations(request: pytest.FixtureRequest) -> None:
    model = load("bert-cls", request)
    table = model.get_input_embeddings().weight.detach().clone()
    cfg = method_config({"name": "prompt_tuning", "num_virtual_tokens": 4})
    prompt = soft_prompt.apply(model, cfg).soft_prompt.weight.detach()
    assert all(any(torch.equal(row, t) for t in table) for row in prompt)  # vocabulary rows
    soft_prompt.base_model(model)
    cfg = method_config(
        {"name": "prefix", "num_virtual_tokens": 4, "projection": True, "projection_hidden": 8}
    )
    encoder = prefix.apply(model, cfg).prefix_encoder
    with torch.no_grad():
        start = encoder()
    assert torch.equal(start, encoder.anchor) and start.abs().sum() > 0  # real-word activations


@pytest.mark.parametrize("kind", ["bert-cls", "llama-clm"])
@pytest.mark.parametrize("case", METHOD_CASES[::2], ids=["prefix", "prompt_tuning"])
def test_bf16_autocast_forward(
    kind: str, case: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    model = METHODS[case["name"]].apply(load(kind, request), method_config(case))
    batch = make_batch(kind)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch).logits
    assert torch.isfinite(out.float()).all()
    loss_of(out.float(), batch).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_prompt_longer_than_positions_is_a_config_error(request: pytest.FixtureRequest) -> None:
    cfg = method_config({"name": "prompt_tuning", "num_virtual_tokens": 125})
    model = soft_prompt.apply(load("bert-cls", request), cfg)  # 128 positions
    from domaintune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.max_length"):
        model(**make_batch("bert-cls"))


@pytest.mark.parametrize("task", ["classification", "token_classification"])
@pytest.mark.parametrize(
    "method",
    [
        {"name": "prefix", "num_virtual_tokens": 4},  # the default: no projection MLP
        {"name": "prompt_tuning", "num_virtual_tokens": 4},
    ],
    ids=["prefix", "prompt_tuning"],
)
def test_run_evaluate_predict(
    task: str,
    method: dict[str, Any],
    tiny_bert: Path,
    cls_data: dict[str, Path],
    ner_data: dict[str, Path],
    tmp_path: Path,
) -> None:
    data = ner_data if task == "token_classification" else cls_data
    recipe = load_recipe(
        {**recipe_dict(tiny_bert, data, task, lr=1e-2), "method": method},
        ["train.max_steps=6", "train.eval_every=3"],
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    final = result.run_dir / "final"
    saved = json.loads((final / api.RUN_FILE).read_text())
    assert saved["method"]["merged"] is False
    assert (final / api.ADAPTER_DIR / ADAPTER_WEIGHTS).is_file()
    from safetensors.torch import load_file

    weights = load_file(str(final / "model.safetensors"))
    assert not any("prefix_encoder" in n or "soft_prompt" in n for n in weights)
    metric = "entity_f1" if task == "token_classification" else "accuracy"
    scores = api.evaluate(result.run_dir, data["test"])
    assert scores[metric] == pytest.approx(result.test[metric])  # reloaded = trained model
    texts = ["the patient has cancer and a good result", "no sign of fever"]
    rows = api.predict(result.run_dir, texts)
    assert len(rows) == 2 and all(row["text"] == t for row, t in zip(rows, texts, strict=True))


@pytest.mark.parametrize("objective", ["mlm", "clm"])
@pytest.mark.parametrize("case", METHOD_CASES[::2], ids=["prefix", "prompt_tuning"])
def test_target_positions_lm_sees_the_method(
    objective: str, case: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """The language-modelling wrapper calls the base model directly: same logits as in full."""
    from domaintune.models.lm import TargetPositionsLM

    if objective == "mlm":
        quiet_libraries()
        model = transformers.AutoModelForMaskedLM.from_pretrained(
            str(request.getfixturevalue("tiny_bert"))
        )
        batch = make_batch("bert-cls")
    else:
        model, batch = load("llama-clm", request), make_batch("llama-clm")
    model = METHODS[case["name"]].apply(model, method_config(case)).eval()
    wrapped = TargetPositionsLM(model, objective)
    assert wrapped.split  # the body-then-head path
    positions = batch["attention_mask"].reshape(-1).nonzero().squeeze(1)
    with torch.no_grad():
        got = wrapped(target_positions=positions, **batch).logits  # (N, V)
    full = logits(model, batch)
    torch.testing.assert_close(got, full.reshape(-1, full.shape[-1])[positions])


@pytest.mark.parametrize(
    "method",
    [
        {"name": "prefix", "num_virtual_tokens": 4, "projection": True, "projection_hidden": 16},
        {"name": "prompt_tuning", "num_virtual_tokens": 4},
    ],
    ids=["prefix", "prompt_tuning"],
)
def test_causal_lm_run(method: dict[str, Any], tiny_llama: Path, tmp_path: Path) -> None:
    """A causal-LM run trains the prefix / prompt and reloads it for evaluation."""
    words = ["the", "patient", "has", "severe", "cancer", "and", "a", "mild", "fever", "with"]
    lines = [" ".join(words[i % 5 :] + words[: i % 5]) for i in range(60)]
    for name in ("train", "test"):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    recipe = load_recipe(
        {
            "task": {"name": "language_modeling"},
            "model": {"name": str(tiny_llama)},
            "data": {
                "train": str(tmp_path / "train.txt"),
                "test": str(tmp_path / "test.txt"),
                "max_length": 16,
                "cache_dir": "none",
            },
            "method": method,
            "train": {"epochs": 3, "lr": 1e-2, "batch_size": 8, "precision": "fp32"},
        }
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    forgetting = json.loads((result.run_dir / "results.json").read_text())["forgetting"]
    assert forgetting["in_domain"]["after"] < forgetting["in_domain"]["before"]
    scores = api.evaluate(result.run_dir, tmp_path / "test.txt")
    assert scores["perplexity"] == pytest.approx(result.test["perplexity"], rel=1e-4)
