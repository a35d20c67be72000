"""Session fixtures: tiny random models saved with save_pretrained, and small synthetic data.

Loading code runs exactly as for a hub model; nothing is downloaded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

WORDS = [
    "the",
    "patient",
    "has",
    "good",
    "bad",
    "cancer",
    "diabetes",
    "and",
    "a",
    "severe",
    "mild",
    "result",
    "was",
    "company",
    "profit",
    "loss",
    "rose",
    "fell",
    "of",
    "in",
    "with",
    "no",
    "sign",
    "tumor",
    "syndrome",
    "fever",
    "reported",
    "strong",
    "weak",
    "market",
    "血",
    "糖",
    "高",
]
DISEASES = ["cancer", "diabetes", "tumor", "fever"]


def _vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return (
        specials
        + WORDS
        + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
        + list("abcdefghijklmnopqrstuvwxyz.,")
    )


def make_tiny_bert(folder: Path, dropout: float = 0.1) -> Path:
    """A 2-layer, 32-wide BERT (no task head) with a WordPiece tokenizer, like MiniLM's folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(_vocab())}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def make_tiny_llama(folder: Path) -> Path:
    """A 2-layer, 32-wide Llama with a word-level tokenizer that has an EOS but no pad token."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "</s>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", eos_token="</s>"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=1,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_bert_no_dropout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert-nodrop", dropout=0.0)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


def write_classification(folder: Path, n_train: int = 96, seed: int = 0) -> dict[str, Path]:
    """JSONL splits where the label is 'positive' iff the text contains 'good'."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", n_train), ("dev", 32), ("test", 32)):
        rows = []
        for i in range(n):
            words = [rng.choice(WORDS[:30]) for _ in range(rng.randint(3, 30))]
            words = [w for w in words if w not in ("good", "bad")]
            label = "positive" if i % 2 else "negative"
            words.insert(rng.randrange(len(words) + 1), "good" if label == "positive" else "bad")
            rows.append({"text": " ".join(words), "label": label})
        path = folder / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths[split] = path
    return paths


def write_conll(folder: Path, n_train: int = 64, seed: int = 0) -> dict[str, Path]:
    """CoNLL splits tagging disease words as B-Disease (and a following 'syndrome' as I-)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", n_train), ("dev", 24), ("test", 24)):
        lines = []
        for _ in range(n):
            for _ in range(rng.randint(3, 25)):
                word = rng.choice(WORDS[:30])
                if word in DISEASES:
                    lines.append(f"{word}\tB-Disease")
                    if rng.random() < 0.5:
                        lines.append("syndrome\tI-Disease")
                else:
                    lines.append(f"{word}\tO" if word != "syndrome" else "patient\tO")
            lines.append("")
        path = folder / f"{split}.conll"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths[split] = path
    return paths


@pytest.fixture()
def cls_data(tmp_path: Path) -> dict[str, Path]:
    return write_classification(tmp_path / "cls")


@pytest.fixture()
def ner_data(tmp_path: Path) -> dict[str, Path]:
    return write_conll(tmp_path / "ner")


def recipe_dict(
    model: Path,
    data: dict[str, Path],
    task: str = "classification",
    cache: Path | None = None,
    **train: object,
) -> dict[str, object]:
    """A small recipe for the tiny models."""
    fmt = "conll" if task == "token_classification" else "jsonl"
    return {
        "task": {"name": task},
        "model": {"name": str(model)},
        "data": {
            "format": fmt,
            "train": str(data["train"]),
            "validation": str(data["dev"]),
            "test": str(data["test"]),
            "max_length": 64,
            "cache_dir": str(cache) if cache else "none",
        },
        # fp32: results must not depend on whether this CPU has bf16 units (auto would use them).
        "train": {
            "epochs": 2,
            "lr": 1e-3,
            "batch_size": 8,
            "seed": 1,
            "precision": "fp32",
            **train,
        },
    }
