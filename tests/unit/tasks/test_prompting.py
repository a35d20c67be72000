"""Prompt encoding, verbalisers and the label scorers of ``method: prompting``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from domaintune.config.methods import PromptingConfig
from domaintune.config.sections import ClassificationTaskConfig
from domaintune.errors import ConfigError, DataError
from domaintune.models.load import ModelSource, load_tokenizer
from domaintune.tasks.classification import ClassificationTask
from domaintune.tasks.prompt_plan import decoder_plan
from domaintune.tasks.prompting import PromptTask

LABELS = ["negative", "positive"]
TEXTS = [
    "the patient has a severe fever",
    "profit rose",
    "the company has no loss and a good result",
]


@pytest.fixture(scope="session")
def tiny_bert_mlm(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT saved with an MLM head (random, but part of the checkpoint)."""
    from transformers import AutoTokenizer, BertForMaskedLM

    folder = tmp_path_factory.mktemp("models") / "tiny-bert-mlm"
    torch.manual_seed(0)
    BertForMaskedLM.from_pretrained(str(tiny_bert)).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(str(folder))
    return folder


def prompt_task(folder: Path, model_type: str, labels: list[str] = LABELS, **method: Any) -> Any:
    """A bound PromptTask over ``labels`` and the tokenizer of ``folder``."""
    base = ClassificationTask(ClassificationTaskConfig(name="classification"), {"labels": labels})
    task = PromptTask(base, PromptingConfig(name="prompting", **method), None)
    tokenizer = load_tokenizer(ModelSource(str(folder), True))
    task.bind(model_type, tokenizer)
    return task, tokenizer


def test_cloze_encoding_has_one_mask_and_truncates_the_text(tiny_bert: Path) -> None:
    task, tok = prompt_task(tiny_bert, "bert", scoring="cloze", template="{text} it was [MASK].")
    long_text = " ".join(["patient"] * 100) + " [MASK] tail"  # a literal mask in the text too
    ids = task.encode([{"text": long_text}, {"text": "good"}], tok, 16).features["input_ids"]
    assert len(ids[0]) == 16
    for row in ids:
        assert int((row == tok.mask_token_id).sum()) == 1
        assert row[0] == tok.cls_token_id and row[-1] == tok.sep_token_id
    template = tok(" it was [MASK].", add_special_tokens=False)["input_ids"]
    assert list(ids[0][-len(template) - 1 : -1]) == template  # the template survived whole
    assert (
        list(ids[0][1:4]) == tok("patient patient patient", add_special_tokens=False)["input_ids"]
    )


def test_template_longer_than_max_length_is_an_error(tiny_bert: Path) -> None:
    task, tok = prompt_task(tiny_bert, "bert", template="{text} " + "patient " * 20 + "[MASK]")
    with pytest.raises(ConfigError, match=r"data\.max_length: 16"):
        task.encode([{"text": "good"}], tok, 16)


def test_multi_token_verbaliser_uses_the_first_sub_token(tiny_bert: Path) -> None:
    task, tok = prompt_task(
        tiny_bert, "bert", scoring="cloze", verbalizer={"negative": "badx", "positive": "goods"}
    )
    assert len(tok("goods", add_special_tokens=False)["input_ids"]) == 2
    assert [w[0] for w in task.plan.words] == [
        tok.convert_tokens_to_ids(t) for t in ("bad", "good")
    ]
    with pytest.raises(ConfigError, match="same token"):
        prompt_task(
            tiny_bert, "bert", scoring="cloze", verbalizer={"negative": "goods", "positive": "good"}
        )


def test_verbaliser_must_name_every_label(tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="no word for label 'positive'"):
        prompt_task(tiny_bert, "bert", verbalizer={"negative": "bad"})
    with pytest.raises(ConfigError, match="'neutral' is not a label"):
        prompt_task(
            tiny_bert, "bert", verbalizer={"negative": "bad", "positive": "good", "neutral": "x"}
        )


def test_encoder_refuses_in_context_and_decoder_refuses_cloze(
    tiny_bert: Path, tiny_llama: Path
) -> None:
    with pytest.raises(ConfigError, match="in_context"):
        prompt_task(tiny_bert, "bert", mode="in_context")
    with pytest.raises(ConfigError, match="decoder"):
        prompt_task(tiny_llama, "llama", scoring="cloze")


def scores(task: Any, tok: Any, model: torch.nn.Module, texts: list[str]) -> torch.Tensor:
    features = task.encode([{"text": t} for t in texts], tok, 64).features
    batch = task.collate(features, tok.pad_token_id)
    module = task.wrap(model).eval()
    with torch.no_grad():
        return module(**batch).logits


@pytest.mark.parametrize(
    "method",
    [
        {"scoring": "cloze", "mode": "zero_shot"},
        {
            "scoring": "cloze_embeddings",
            "verbalizer": {"negative": ["bad", "weak"], "positive": "good"},
        },
        {"scoring": "similarity", "calibrate": True},
    ],
    ids=["cloze-calibrated", "cloze-embeddings-two-words", "similarity-calibrated"],
)
def test_zero_shot_scores_are_probabilities(tiny_bert_mlm: Path, method: dict[str, Any]) -> None:
    from transformers import AutoModelForMaskedLM

    task, tok = prompt_task(tiny_bert_mlm, "bert", **method)
    model = AutoModelForMaskedLM.from_pretrained(str(tiny_bert_mlm))
    logits = scores(task, tok, model, TEXTS)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    probs = np.stack(task.outputs(logits, {}))
    assert np.allclose(probs.sum(1), 1.0) and (probs >= 0).all()
    assert not np.allclose(probs[0], probs[1])  # the text matters


def test_auto_scoring_follows_the_checkpoint_head(tiny_bert: Path, tiny_bert_mlm: Path) -> None:
    from transformers import AutoModelForMaskedLM

    for folder, expected in ((tiny_bert, "similarity"), (tiny_bert_mlm, "cloze")):
        task, _ = prompt_task(folder, "bert")
        model, info = AutoModelForMaskedLM.from_pretrained(str(folder), output_loading_info=True)
        task.on_model_loaded(model, set(info["missing_keys"]))
        assert task.scoring == expected


def hand_scores(
    model: torch.nn.Module, prompt: list[int], words: list[list[int]], normalize: bool
) -> list[float]:
    """Each continuation's log-probability from a full, unpadded forward pass."""
    out = []
    for word in words:
        ids = torch.tensor([prompt + word])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)  # (T, V)
        total = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(word))
        out.append(total / len(word) if normalize else total)
    return out


@pytest.mark.parametrize(
    ("normalize", "attention"),
    [(True, "sdpa"), (False, "sdpa"), (True, "eager"), (False, "one-row-per-label")],
)
def test_label_likelihood_equals_a_hand_computation(
    tiny_llama: Path, normalize: bool, attention: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels side by side under a 4D mask (sdpa, eager), or one cache copy per label."""
    from transformers import AutoModelForCausalLM

    from domaintune.models import prompt_scorers

    verbalizer = {"negative": ["bad", "weak result"], "positive": "good sign"}
    task, tok = prompt_task(
        tiny_llama, "llama", verbalizer=verbalizer, length_normalize=normalize, calibrate=False
    )
    assert [len(w) for w in task.plan.words] == [1, 2, 2]  # uneven continuations
    if attention == "one-row-per-label":
        monkeypatch.setattr(prompt_scorers, "MASKABLE", ())
        attention = "sdpa"
    model = AutoModelForCausalLM.from_pretrained(
        str(tiny_llama), attn_implementation=attention
    ).eval()
    logits = scores(task, tok, model, TEXTS)  # right-padded prompts of three lengths
    prompts = task.encode([{"text": t} for t in TEXTS], tok, 64).features["input_ids"]
    for row, prompt in enumerate(prompts):
        words = hand_scores(model, [int(i) for i in prompt], task.plan.words, normalize)
        expected = [float(torch.logsumexp(torch.tensor(words[:2]), 0)), words[2]]
        torch.testing.assert_close(logits[row], torch.tensor(expected), atol=1e-4, rtol=1e-4)


def test_calibration_divides_by_the_content_free_probabilities(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    verbalizer = {"negative": "bad", "positive": "good sign"}
    plain, tok = prompt_task(tiny_llama, "llama", verbalizer=verbalizer, calibrate=False)
    calibrated, _ = prompt_task(tiny_llama, "llama", verbalizer=verbalizer, calibrate=True)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    raw = torch.log_softmax(scores(plain, tok, model, [*TEXTS, "N/A", ""]), -1)
    expected = raw[:3] - raw[3:].mean(0)
    torch.testing.assert_close(scores(calibrated, tok, model, TEXTS), expected, atol=1e-5, rtol=0)


def test_chat_models_get_turns_and_an_end_of_turn(tiny_llama: Path) -> None:
    tok = load_tokenizer(ModelSource(str(tiny_llama), True))
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    plan = decoder_plan(tok, "{text}", "", [["bad"], ["good"]], [("profit rose", 1)])
    assert plan.rendered[0] == "user : profit rose </s> assistant : good </s> user : "
    assert plan.rendered[1] == " </s> assistant : "
    assert plan.words == [tok("bad </s>")["input_ids"], tok("good </s>")["input_ids"]]
    assert plan.words[0][-1] == tok.eos_token_id


def test_label_likelihood_refuses_gradient_checkpointing_in_training(tiny_llama: Path) -> None:
    """transformers turns the KV cache off under checkpointing: an error, not wrong scores."""
    from transformers import AutoModelForCausalLM

    from domaintune.errors import ModelError

    task, tok = prompt_task(
        tiny_llama, "llama", verbalizer={"negative": "weak result", "positive": "good"}
    )
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    model.gradient_checkpointing_enable()
    module = task.wrap(model).train()
    batch = task.collate(task.encode([{"text": t} for t in TEXTS], tok, 64).features, 0)
    with pytest.raises(ModelError, match="gradient_checkpointing: false"):
        module(**batch)


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat-template"])
def test_shared_prefix_scores_equal_whole_prompts(tiny_llama: Path, chat: bool) -> None:
    """Instruction and demonstrations run once per batch: the same scores as every row whole."""
    from transformers import AutoModelForCausalLM

    base = ClassificationTask(ClassificationTaskConfig(name="classification"), {"labels": LABELS})
    method = PromptingConfig(
        name="prompting",
        mode="in_context",
        verbalizer={"negative": ["bad", "weak result"], "positive": "good sign"},
    )
    task = PromptTask(base, method, None)
    task.demonstrations = [
        {"text": "profit rose", "label": "positive"},
        {"text": "the company has a loss", "label": "negative"},
    ]
    tok = load_tokenizer(ModelSource(str(tiny_llama), True))
    if chat:
        tok.chat_template = (
            "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
            "{% if add_generation_prompt %}assistant : {% endif %}"
        )
    task.bind("llama", tok)
    assert task.plan is not None and len(task.plan.lead + task.plan.before) > 5
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    module = task.wrap(model).eval()
    assert module.prefix.tolist() == task.plan.lead + task.plan.before
    batch = task.collate(task.encode([{"text": t} for t in TEXTS], tok, 64).features, 0)
    calls: list[int] = []
    hook = model.model.register_forward_pre_hook(
        lambda _m, _a, kw: calls.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    with torch.no_grad():
        shared = module(**batch).logits
    width = module.prefix.numel()
    assert calls[0] == width  # the prefix ran once, as a batch of one row
    module.prefix = module.prefix[:0]  # every row whole
    with torch.no_grad():
        whole = module(**batch).logits
    hook.remove()
    torch.testing.assert_close(shared, whole, atol=1e-5, rtol=1e-5)


CALIBRATION_TRAIN = [
    {"text": "profit rose sharply", "label": "positive"},
    {"text": "the loss widened", "label": "negative"},
    {"text": "a good quarter", "label": "positive"},
    {"text": "sales fell", "label": "negative"},
    {"text": "the result was weak", "label": "negative"},
]


def batch_calibrated_task(folder: Path, **method: Any) -> tuple[Any, Any]:
    """A bound llama PromptTask with batch calibration, its texts drawn from CALIBRATION_TRAIN."""
    from domaintune.data.pipeline import RawSplits

    base = ClassificationTask(ClassificationTaskConfig(name="classification"), None)
    config = PromptingConfig(name="prompting", calibrate=True, calibration_inputs="train", **method)
    task = PromptTask(base, config, None)
    task.fit_labels(RawSplits({"train": CALIBRATION_TRAIN}, {"train": "train.jsonl"}))
    tokenizer = load_tokenizer(ModelSource(str(folder), True))
    task.bind("llama", tokenizer)
    return task, tokenizer


def test_batch_calibration_divides_by_the_mean_probabilities_of_training_texts(
    tiny_llama: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    verbalizer = {"negative": "bad", "positive": "good sign"}
    task, tok = batch_calibrated_task(tiny_llama, verbalizer=verbalizer, calibration_size=3)
    texts = task.calibration_texts
    assert len(texts) == 3 and set(texts) <= {e["text"] for e in CALIBRATION_TRAIN}
    again, _ = batch_calibrated_task(tiny_llama, verbalizer=verbalizer, calibration_size=3)
    assert again.calibration_texts == texts  # seeded
    assert task.state()["prompt"]["calibration_texts"] == texts  # saved with the run
    plain, _ = prompt_task(tiny_llama, "llama", verbalizer=verbalizer, calibrate=False)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    raw = torch.log_softmax(scores(plain, tok, model, [*TEXTS, *texts]), -1)
    expected = raw[:3] - torch.log(raw[3:].exp().mean(0))  # log p(y|x) - log mean p(y|train)
    torch.testing.assert_close(scores(task, tok, model, TEXTS), expected, atol=1e-5, rtol=0)


def test_calibration_bias_is_kept_in_evaluation_and_recomputed_after_a_mode_switch(
    tiny_llama: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    task, tok = batch_calibrated_task(
        tiny_llama, verbalizer={"negative": "bad", "positive": "good"}
    )
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama))
    module = task.wrap(model).eval()
    module.prefix = module.prefix[:0]  # every row whole: one forward call a batch
    rows: list[int] = []
    hook = model.model.register_forward_pre_hook(
        lambda _m, _a, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True
    )
    first = task.collate(task.encode([{"text": t} for t in TEXTS], tok, 64).features, 0)
    second = task.collate(task.encode([{"text": TEXTS[1]}], tok, 64).features, 0)
    with torch.no_grad():
        together = module(**first).logits
        alone = module(**second).logits  # the kept bias: no calibration rows this time
        module.train()
        module.eval()
        fresh = module(**second).logits  # the bias computed again, with the rows
    hook.remove()
    calibration = len(task.calibration_texts)
    assert rows == [3 + calibration, 1, 1 + calibration]
    torch.testing.assert_close(alone[0], together[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(fresh, alone, atol=1e-5, rtol=0)


def test_batch_calibration_skips_the_demonstrations_and_needs_other_texts() -> None:
    from domaintune.data.pipeline import RawSplits

    base = ClassificationTask(ClassificationTaskConfig(name="classification"), None)
    config = PromptingConfig(
        name="prompting", mode="in_context", demonstrations=1, calibration_inputs="train"
    )
    task = PromptTask(base, config, None)
    task.fit_labels(RawSplits({"train": CALIBRATION_TRAIN}, {"train": "train.jsonl"}))
    shown = {d["text"] for d in task.demonstrations}
    assert len(task.calibration_texts) == 3 and not shown & set(task.calibration_texts)
    two = PromptTask(base, config, None)
    with pytest.raises(DataError, match=r"train\.jsonl: method\.calibration_inputs: train"):
        two.fit_labels(RawSplits({"train": CALIBRATION_TRAIN[:2]}, {"train": "train.jsonl"}))
