"""Real packaged models on ../shared/data (run with ``pytest -m integration``).

Tests whose name contains ``ci_subset`` are the short subset that CI runs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from domaintune import api
from domaintune.config import load_recipe

pytestmark = pytest.mark.integration
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not there (../shared beside the checkout)")
    return path


def test_ci_subset_minilm_financial_phrasebank_trains(tmp_path: Path) -> None:
    data = _need(SHARED / "financial-phrasebank")
    train = tmp_path / "train.jsonl"
    # The file is not shuffled (its first 480 lines are 74% "positive"): sample at random, seeded.
    lines = (data / "train.jsonl").read_text().splitlines(True)
    train.write_text("".join(random.Random(0).sample(lines, 480)))
    recipe = load_recipe(
        {
            "task": {"name": "classification"},
            "model": {"name": "minilm"},
            "data": {
                "train": str(train),
                "validation": str(data / "dev.jsonl"),
                "test": str(data / "test.jsonl"),
                "cache_dir": str(tmp_path / "cache"),
            },
            "method": {"name": "freeze", "layers": 1},
            "train": {"epochs": 2, "lr": 5e-4, "batch_size": 16},
        }
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    assert result.steps == 60
    # Majority class: accuracy 0.59, macro-F1 0.25. Measured here: 0.696 / 0.555 after 60 steps.
    assert result.test["accuracy"] > 0.65
    assert result.test["f1_macro"] > 0.45
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def test_ci_subset_ncbi_builtin_demo_data_reads() -> None:
    from domaintune.data.pipeline import load_splits

    recipe = load_recipe("domaintune/recipes/ncbi-disease-ner.yaml")
    raw = load_splits(recipe.data, "tokens")
    assert raw.stats["sizes"] == {"train": 5401, "validation": 923, "test": 940}
    assert raw.stats["duplicates_dropped"] == 31  # exact repeats (PMID 8528200 appears twice)
    reference = (_need(SHARED / "ncbi-disease") / "test.conll").read_text()
    assert reference.count("\n\n") + 1 >= 940


def test_smollm2_gguf_loads_for_classification(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from domaintune.config import ModelConfig
    from domaintune.models.load import load_model, load_tokenizer, resolve_source

    source = resolve_source(ModelConfig(name="smollm2"))
    tokenizer = load_tokenizer(source)
    assert tokenizer.pad_token == "<|im_end|>"
    model = load_model(source, AutoModelForSequenceClassification, num_labels=3)
    model.config.pad_token_id = tokenizer.pad_token_id
    batch = tokenizer(
        ["a short one", "a somewhat longer sentence here"],
        padding=True,
        return_tensors="pt",
        max_length=32,
        truncation=True,
    )
    assert model(**batch).logits.shape == (2, 3)


def test_full_financial_phrasebank_meets_targets(tmp_path: Path) -> None:
    _need(SHARED / "financial-phrasebank")
    result = api.run("bench/recipes/foundation-fpb.yaml", output_dir=tmp_path / "run")
    assert result.test["accuracy"] >= 0.85 and result.test["f1_macro"] >= 0.82
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test"]


def test_ci_subset_smollm2_own_chat_template_masks_exactly_the_answers() -> None:
    """The SFT mask on the packaged SmolLM2 tokenizer and its own ChatML template (not a copy)."""
    from domaintune.config import ModelConfig
    from domaintune.data.chat import ChatRenderer, encode_decoder
    from domaintune.models.load import load_tokenizer, resolve_source
    from tests.generation_models import learned_runs

    tok = load_tokenizer(resolve_source(ModelConfig(name="smollm2")))
    assert tok.pad_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    messages = [
        {"role": "user", "content": "Which disease is named in: BRCA1 carriers and breast cancer?"},
        {"role": "assistant", "content": "breast cancer"},
        {"role": "user", "content": "And the gene?"},
        {"role": "assistant", "content": "BRCA1"},
    ]
    enc = encode_decoder([{"messages": messages}], tok, ChatRenderer(tok), 512)
    ids = enc.features["input_ids"][0].tolist()
    mask = enc.features["loss_mask"][0].tolist()
    assert tok.decode(ids) == tok.apply_chat_template(messages, tokenize=False)
    # Both answers with their end-of-turn token, nothing of the system prompt or user turns.
    assert learned_runs(tok, ids, mask) == ["breast cancer<|im_end|>", "BRCA1<|im_end|>"]
    first = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    prompt = list(tok(first, add_special_tokens=False)["input_ids"])
    assert ids[: len(prompt)] == prompt and not any(mask[: len(prompt)])
