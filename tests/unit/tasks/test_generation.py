"""The generation task end to end: tiny T5/BART seq2seq and a ChatML Llama SFT with LoRA."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from domaintune import api
from domaintune.cli import app
from domaintune.config import load_recipe
from domaintune.config.recipe import Recipe
from domaintune.errors import ConfigError, DataError, RunError
from tests.generation_models import (
    make_chat_llama,
    make_tiny_bart,
    make_tiny_t5,
    write_generation_data,
)

GENERATION_METRICS = ("rouge_l", "bleu", "chrf", "exact_match", "perplexity")


def _recipe(
    model: Path, data: dict[str, Path], task: dict[str, Any], max_length: int = 48, **train: Any
) -> dict[str, Any]:
    return {
        "task": {"name": "generation", **task},
        "model": {"name": str(model)},
        "data": {
            "train": str(data["train"]),
            "validation": str(data["dev"]),
            "test": str(data["test"]),
            "max_length": max_length,
            "cache_dir": "none",
        },
        "train": {
            "epochs": 2,
            "lr": 3e-3,
            "batch_size": 8,
            "eval_batch_size": 4,
            "seed": 1,
            "precision": "fp32",
            **train,
        },
    }


def _check_run_folder(run_dir: Path, n_test: int = 6) -> dict[str, Any]:
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    for name in GENERATION_METRICS:
        assert name in results["test"], name
    assert results["test"]["generated"] == n_test
    rows = [
        json.loads(line)
        for line in (run_dir / "predictions-test.jsonl").read_text("utf-8").splitlines()
    ]
    assert len(rows) == n_test
    assert all(set(r) == {"prompt", "reference", "prediction"} for r in rows)
    assert rows[0]["reference"].startswith("the ")
    evals = [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text("utf-8").splitlines()
        if '"eval"' in line
    ]
    assert evals and all("perplexity" in e for e in evals)  # cheap metric during training
    assert (run_dir / "final" / "config.json").is_file()
    return results


def test_t5_seq2seq_trains_generates_and_scores(tmp_path: Path) -> None:
    model = make_tiny_t5(tmp_path / "t5")
    data = write_generation_data(tmp_path / "data", "seq2seq")
    recipe = Recipe.model_validate(
        _recipe(model, data, {"format": "seq2seq", "decoding": {"max_new_tokens": 6}})
    )
    result = api.run(recipe, output_dir=tmp_path / "run")
    results = _check_run_folder(result.run_dir)
    assert results["validation"]["perplexity"] > 1.0
    assert "generated" not in results["validation"]  # generate_splits: [test]
    # evaluating the finished run on its test file reproduces its test scores
    again = api.evaluate(result.run_dir, data["test"])
    for name in GENERATION_METRICS:
        assert again[name] == pytest.approx(results["test"][name], rel=1e-6), name
    assert (result.run_dir / "eval-test-predictions.jsonl").read_text("utf-8") == (
        result.run_dir / "predictions-test.jsonl"
    ).read_text("utf-8")
    with pytest.raises(RunError, match="generates at its final evaluation"):
        api.predict(result.run_dir, ["the patient"])


def test_bart_lora_through_the_cli_with_beam_search(tmp_path: Path) -> None:
    model = make_tiny_bart(tmp_path / "bart")
    data = write_generation_data(tmp_path / "data", "instruction")
    recipe = _recipe(
        model,
        data,
        {
            "decoding": {"strategy": "beam", "num_beams": 2, "max_new_tokens": 5},
            "max_generate": 4,
            "generate_splits": ["validation", "test"],
        },
    )
    recipe["method"] = {"name": "lora", "r": 4, "alpha": 8}
    path = tmp_path / "bart.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    out = CliRunner().invoke(app, ["train", str(path), "-o", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    results = _check_run_folder(tmp_path / "run", n_test=4)
    assert results["validation"]["generated"] == 4
    assert (tmp_path / "run" / "predictions-validation.jsonl").is_file()


def test_chatml_decoder_sft_with_packing_and_sampling(tmp_path: Path) -> None:
    model = make_chat_llama(tmp_path / "llama")
    data = write_generation_data(tmp_path / "data", "chat")
    task = {
        "format": "chat",
        "decoding": {
            "strategy": "sample",
            "temperature": 0.7,
            "top_p": 0.9,
            "max_new_tokens": 6,
            "stop": ["\n"],
        },
    }
    # SmolLM2's template adds a ~30-token default system prompt to every conversation
    recipe = Recipe.model_validate(_recipe(model, data, task, max_length=96))
    assert recipe.task.pack_length == 96  # type: ignore[union-attr]  # null → data.max_length
    first = api.run(recipe, output_dir=tmp_path / "run")
    results = _check_run_folder(first.run_dir)
    losses = [e["perplexity"] for e in results["evaluations"]]
    assert losses[-1] < losses[0]  # it learns the answers
    rows = (first.run_dir / "predictions-test.jsonl").read_text("utf-8").splitlines()
    assert all("\n" not in json.loads(r)["prediction"] for r in rows)  # cut at the stop string


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domaintune.config.generation import GenerationTaskConfig
    from domaintune.tasks.generation import GenerationTask

    folder = make_chat_llama(tmp_path_factory.mktemp("models") / "llama")
    tok = AutoTokenizer.from_pretrained(str(folder))
    task = GenerationTask(GenerationTaskConfig(name="generation"))
    task.bind("llama", tok)
    return AutoModelForCausalLM.from_pretrained(str(folder)), tok, task


PROMPTS = [
    {"messages": [{"role": "user", "content": "the patient has a mild fever and"}]},
    {"messages": [{"role": "user", "content": "no"}]},
    {"prompt": "profit rose =>"},
]


def test_left_padded_batches_generate_what_each_prompt_generates_alone(
    chat_model: tuple[Any, Any, Any],
) -> None:
    from domaintune.config.generation import DecodingConfig
    from domaintune.tasks.generate import generate_texts

    model, tok, task = chat_model
    prompts = [task.prompt_ids(p, tok, 64) for p in PROMPTS]
    assert len({len(p) for p in prompts}) == 3  # the batch needs padding
    assert tok.decode(prompts[0]).endswith("<|im_start|>assistant\n")
    greedy = DecodingConfig(max_new_tokens=5)
    batched = generate_texts(model, tok, prompts, greedy, encoder_decoder=False, batch_size=3)
    alone = [
        generate_texts(model, tok, [p], greedy, encoder_decoder=False, batch_size=1)[0]
        for p in prompts
    ]
    assert batched == alone and any(batched)


def test_sampling_is_seeded_and_stop_strings_cut_the_text(
    chat_model: tuple[Any, Any, Any],
) -> None:
    from domaintune.config.generation import DecodingConfig
    from domaintune.tasks.generate import cut_at_stop, generate_texts

    model, tok, task = chat_model
    prompts = [task.prompt_ids(p, tok, 64) for p in PROMPTS]
    sample = DecodingConfig(strategy="sample", temperature=1.5, max_new_tokens=8, seed=3)
    first = generate_texts(model, tok, prompts, sample, encoder_decoder=False, batch_size=2)
    again = generate_texts(model, tok, prompts, sample, encoder_decoder=False, batch_size=2)
    assert first == again
    other = sample.model_copy(update={"seed": 4})
    assert generate_texts(model, tok, prompts, other, encoder_decoder=False, batch_size=2) != first
    assert cut_at_stop("a mild fever. And more", [".", "And"]) == "a mild fever"


def test_decoder_sft_with_lora_on_prompt_completion(tmp_path: Path) -> None:
    model = make_chat_llama(tmp_path / "llama")
    data = write_generation_data(tmp_path / "data", "prompt_completion")
    task = {"metrics": ["exact_match"], "max_generate": 2, "evaluate_before": True}
    recipe = _recipe(model, data, task, epochs=1)
    recipe["method"] = {"name": "lora", "r": 4, "alpha": 8}
    general = tmp_path / "general.txt"
    general.write_text("the market rose and the company reported a strong profit\n" * 20)
    recipe["data"]["reference_text"] = str(general)
    result = api.run(Recipe.model_validate(recipe), output_dir=tmp_path / "run")
    assert set(result.test) >= {"exact_match", "perplexity", "generated"}
    assert "rouge_l" not in result.test
    assert (result.run_dir / "final" / "adapter" / "adapter_config.json").is_file()
    results = json.loads((result.run_dir / "results.json").read_text("utf-8"))
    # the untrained model (LoRA's update starts at zero) scored and decoded before training
    before = results["before"]["test"]
    assert before["generated"] == 2 and before["perplexity"] != result.test["perplexity"]
    assert (result.run_dir / "predictions-test-before.jsonl").read_text("utf-8").count("\n") == 2
    # general-text perplexity before and after SFT: how much general language was forgotten
    general_ppl = results["forgetting"]["general"]
    assert general_ppl["before"] > 1.0 and general_ppl["after"] > 1.0
    assert general_ppl["change"] == pytest.approx(
        general_ppl["after"] / general_ppl["before"], abs=1e-3
    )
    assert "in_domain" not in results["forgetting"]  # the test perplexity is in results["test"]


def test_recipe_checks(tmp_path: Path) -> None:
    base = {"task": {"name": "generation"}, "data": {"train": "x.jsonl"}}
    with pytest.raises(ConfigError, match="selects its checkpoint on perplexity"):
        _load(tmp_path, {**base, "eval": {"metric": "rouge_l"}})
    with pytest.raises(ConfigError, match="strategy: beam"):
        _load(tmp_path, {**base, "task": {"name": "generation", "decoding": {"num_beams": 3}}})
    with pytest.raises(ConfigError, match="strategy: sample"):
        _load(tmp_path, {**base, "task": {"name": "generation", "decoding": {"top_p": 0.5}}})
    recipe = _load(tmp_path, {**base, "data": {"train": "x.jsonl", "max_length": 256}})
    assert recipe.task.pack_length == 256  # type: ignore[union-attr]


def _load(tmp_path: Path, recipe: dict[str, Any]) -> Recipe:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return load_recipe(path)


def test_rows_of_another_format_are_refused(tmp_path: Path) -> None:
    data = write_generation_data(tmp_path / "data", "prompt_completion")
    recipe = Recipe.model_validate(_recipe(tmp_path, data, {"format": "chat"}))
    with pytest.raises(DataError, match="example 1 is prompt_completion data"):
        api.prepare_data(recipe)
