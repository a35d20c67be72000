"""The language_modeling task: packing, masking, target-only projection and perplexity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from domaintune.config.sections import LanguageModelingTaskConfig
from domaintune.models.lm import TargetPositionsLM
from domaintune.tasks.language_modeling import LanguageModelingTask, perplexity_metrics


def _task(objective: str, tokenizer: object, **cfg: object) -> LanguageModelingTask:
    task = LanguageModelingTask(
        LanguageModelingTaskConfig(name="language_modeling", objective=objective, **cfg)  # type: ignore[arg-type]
    )
    task.bind("bert" if objective == "mlm" else "llama", tokenizer)
    return task


def _tokenizer(folder: Path) -> object:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


DOCS = [{"text": "the patient has cancer"}, {"text": "a mild fever"}, {"text": "profit rose"}]


def test_auto_objective_follows_the_model_type(tiny_bert: Path) -> None:
    tok = _tokenizer(tiny_bert)
    task = LanguageModelingTask(LanguageModelingTaskConfig(name="language_modeling"))
    task.bind("bert", tok)
    assert task.objective == "mlm"
    task = LanguageModelingTask(LanguageModelingTaskConfig(name="language_modeling"))
    task.bind("llama", tok)
    assert task.objective == "clm"


def test_clm_packs_documents_with_eos_and_no_padding(tiny_llama: Path) -> None:
    tok = _tokenizer(tiny_llama)
    task = _task("clm", tok)
    encoded = task.encode(DOCS, tok, max_length=4)
    joined = []
    for doc in DOCS:
        joined += tok(doc["text"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert len(joined) == 12
    assert [b.tolist() for b in encoded.features["input_ids"]] == [
        joined[0:4],
        joined[4:8],
        joined[8:12],
    ]
    batch = task.collate(encoded.features, tok.pad_token_id, training=True)
    assert "attention_mask" not in batch  # full blocks: nothing to mask
    # targets: every position but the last of each block, labelled with the next token
    assert batch["target_positions"].tolist() == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    flat = torch.tensor(joined)
    assert batch["labels"].tolist() == flat[batch["target_positions"] + 1].tolist()


def test_partial_last_block_is_dropped_unless_it_is_all(tiny_llama: Path) -> None:
    tok = _tokenizer(tiny_llama)
    task = _task("clm", tok)
    assert [len(b) for b in task.encode(DOCS, tok, 5).features["input_ids"]] == [5, 5]
    assert [len(b) for b in task.encode(DOCS[:1], tok, 64).features["input_ids"]] == [5]


def test_mlm_masks_only_ordinary_tokens_and_labels_the_originals(tiny_bert: Path) -> None:
    tok = _tokenizer(tiny_bert)
    task = _task("mlm", tok, mask_probability=0.5)
    docs = [{"text": " ".join(["the patient has cancer"] * 6)}] * 8
    encoded = task.encode(docs, tok, max_length=16)
    original = torch.tensor(np.stack(encoded.features["input_ids"]))
    torch.manual_seed(0)
    batch = task.collate(encoded.features, tok.pad_token_id, training=False)
    positions = batch["target_positions"]
    assert 0.3 < len(positions) / original.numel() < 0.6
    specials = torch.tensor(tok.all_special_ids)
    assert not torch.isin(original.reshape(-1)[positions], specials).any()
    assert batch["labels"].tolist() == original.reshape(-1)[positions].tolist()
    masked = batch["input_ids"].reshape(-1)
    assert (masked[positions] == tok.mask_token_id).all()  # evaluation: always [MASK]
    untouched = torch.ones_like(masked, dtype=torch.bool)
    untouched[positions] = False
    assert torch.equal(masked[untouched], original.reshape(-1)[untouched])


def test_evaluation_masks_are_a_function_of_the_content(tiny_bert: Path) -> None:
    tok = _tokenizer(tiny_bert)
    task = _task("mlm", tok)
    encoded = task.encode([{"text": "the patient has severe cancer " * 10}] * 4, tok, 32)
    first = task.collate(encoded.features, tok.pad_token_id)
    torch.manual_seed(123)
    reordered = encoded.subset(list(reversed(range(len(encoded)))))
    second = task.collate(reordered.features, tok.pad_token_id)
    width = first["input_ids"].shape[1]
    rows_first = sorted((first["target_positions"] % width).tolist())
    rows_second = sorted((second["target_positions"] % width).tolist())
    assert rows_first == rows_second


def test_whole_word_masking_masks_every_piece_of_a_word(tiny_bert: Path) -> None:
    tok = _tokenizer(tiny_bert)
    task = _task("mlm", tok, whole_word_masking=True, mask_probability=0.3)
    # 'xyz' and 'qrs' are not in the tiny vocabulary: each splits into 3 pieces (x ##y ##z)
    docs = [{"text": "xyz the qrs patient " * 8}] * 4
    encoded = task.encode(docs, tok, 64)
    starts = np.stack(encoded.features["word_start"])
    for _ in range(5):
        batch = task.collate(encoded.features, tok.pad_token_id, training=True)
        chosen = torch.zeros(starts.size, dtype=torch.bool)
        chosen[batch["target_positions"]] = True
        chosen = chosen.view(starts.shape)
        word = np.cumsum(starts, axis=1)
        for row in range(starts.shape[0]):
            for w in np.unique(word[row]):
                flags = chosen[row][torch.from_numpy(word[row] == w)]
                assert flags.all() or not flags.any()


def test_chinese_whole_words_come_from_jieba(tiny_bert: Path) -> None:
    tok = _tokenizer(tiny_bert)
    task = _task("mlm", tok, whole_word_masking=True)
    encoded = task.encode([{"text": "高血糖"}], tok, 64)  # jieba: one word, three characters
    ids = encoded.features["input_ids"][0].tolist()
    starts = encoded.features["word_start"][0].tolist()
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "高", "血", "糖", "[SEP]"]
    assert starts == [1, 1, 0, 0, 1]


@pytest.mark.parametrize("kind", ["mlm", "clm"])
def test_target_only_projection_equals_the_full_vocabulary_loss(
    kind: str, tiny_bert: Path, tiny_llama: Path
) -> None:
    """The wrapper's loss equals transformers' own loss over all positions (labels -100 off)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    folder = tiny_bert if kind == "mlm" else tiny_llama
    tok = _tokenizer(folder)
    torch.manual_seed(0)
    model_class = AutoModelForMaskedLM if kind == "mlm" else AutoModelForCausalLM
    model = model_class.from_pretrained(str(folder)).eval()
    task = _task(kind, tok, mask_probability=0.3)
    docs = [{"text": "the patient has severe cancer and a mild fever " * 3}] * 6
    encoded = task.encode(docs, tok, 16)
    batch = task.collate(encoded.features, tok.pad_token_id, training=True)
    wrapped = TargetPositionsLM(model, kind)
    assert wrapped.split  # BERT and Llama both project only the target rows
    logits = wrapped(input_ids=batch["input_ids"], target_positions=batch["target_positions"])
    assert logits.logits.shape == (len(batch["labels"]), model.config.vocab_size)
    total, count = task.loss(logits.logits, batch)
    ours = total / count

    labels = torch.full(batch["input_ids"].shape, -100).reshape(-1)
    if kind == "mlm":
        labels[batch["target_positions"]] = batch["labels"]
    else:  # transformers shifts causal labels itself: label position t+1 with token t+1
        labels[batch["target_positions"] + 1] = batch["labels"]
    full = model(input_ids=batch["input_ids"], labels=labels.view_as(batch["input_ids"])).loss
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-5)

    outputs = task.outputs(logits.logits, batch)
    assert math.isclose(perplexity_metrics(outputs)["loss"], ours.item(), rel_tol=1e-5)


def test_predict_on_a_language_model_run_says_what_to_do(tiny_bert: Path) -> None:
    from domaintune.errors import RunError

    task = _task("mlm", _tokenizer(tiny_bert))
    with pytest.raises(RunError, match="evaluate"):
        task.format_predictions([], [], None, None)  # type: ignore[arg-type]


def test_lm_run_reports_forgetting_and_evaluates_text_files(
    tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A causal-LM run (LoRA) reports perplexity before/after and `evaluate` scores a .txt."""
    import json

    from domaintune.api import evaluate, run
    from domaintune.config import Recipe

    words = [
        "the",
        "patient",
        "has",
        "severe",
        "cancer",
        "and",
        "a",
        "mild",
        "fever",
        "with",
        "no",
        "sign",
        "of",
        "tumor",
    ]
    lines = [" ".join(words[i % 5 :] + words[: i % 5]) for i in range(60)]
    for name in ("train", "test", "general"):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    recipe = Recipe.model_validate(
        {
            "task": {"name": "language_modeling"},
            "model": {"name": str(tiny_llama)},
            "data": {
                "train": str(tmp_path / "train.txt"),
                "test": str(tmp_path / "test.txt"),
                "reference_text": str(tmp_path / "general.txt"),
                "max_length": 16,
                "cache_dir": "none",
            },
            "method": {"name": "lora", "r": 4, "alpha": 8},
            "train": {"epochs": 3, "lr": 5e-3, "batch_size": 8, "precision": "fp32"},
        }
    )
    result = run(recipe, output_dir=tmp_path / "run")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["train"]["objective"] == "clm"
    assert 0 < results["train"]["trainable_parameters"] < results["train"]["total_parameters"]
    forgetting = results["forgetting"]
    assert forgetting["in_domain"]["after"] < forgetting["in_domain"]["before"]
    assert forgetting["general"]["before"] > 0
    assert result.test["perplexity"] == pytest.approx(forgetting["in_domain"]["after"], rel=1e-3)
    scores = evaluate(tmp_path / "run", tmp_path / "test.txt")
    assert scores["perplexity"] == pytest.approx(result.test["perplexity"], rel=1e-3)
    from domaintune.api import predict, predict_file, serving_app
    from domaintune.errors import RunError

    with pytest.raises(RunError, match="no labels to predict"):
        serving_app(tmp_path / "run")  # refused before the server starts

    with pytest.raises(RunError, match=r"run has no labels to predict → use 'domaintune eval"):
        predict(tmp_path / "run", ["the patient has cancer"])
    out = tmp_path / "predictions.jsonl"
    with pytest.raises(RunError, match="no labels to predict"):
        predict_file(tmp_path / "run", tmp_path / "test.txt", out, progress=False)
    assert not out.exists() and not out.with_name(out.name + ".tmp").exists()
    assert not (tmp_path / "run" / "final" / "adapter_config.json").exists()  # merged
    import sys

    from transformers import AutoModelForCausalLM

    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now fails
    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "run" / "final"))
    assert reloaded.config.model_type == "llama"
