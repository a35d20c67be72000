"""Domain vocabulary expansion on the tiny generated BERT (WordPiece) and Llama (WordLevel)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from domaintune.cli import app
from domaintune.models.vocab import (
    add_domain_tokens,
    find_domain_tokens,
    init_new_embeddings,
    tokenization_stats,
    unknown_characters,
)

# The tiny vocabulary knows 高 血 糖, single letters (and ##letters), and a few English words.
TEXTS = [
    "高血压患者的血糖高",
    "血压正常的患者",
    "肾 hypertension",
    "The patient has Hypertension and a fever",
    "hypertension with aω and ω",
    "cardiomyopathy café Café",
]
# unknown characters seen twice, by (count, string); then fragmented words by count × (pieces − 1)
EXPECTED = ["ω", "压", "患", "的", "者", "hypertension", "cafe"]


@pytest.fixture(scope="module")
def bert_tok(tiny_bert: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bert))


def test_stats_count_unknown_characters_and_fragments(bert_tok: Any) -> None:
    stats = tokenization_stats(bert_tok, ["高血压 the hypertension"])
    # words: 高 血 压 the hypertension; pieces 1 1 1([UNK]) 1 12
    assert stats["words"] == 5 and stats["tokens"] == 16
    assert stats["unk_rate"] == pytest.approx(1 / 16)
    assert stats["pieces_per_word"] == pytest.approx(16 / 5)
    assert stats["fragmented_word_rate"] == pytest.approx(1 / 5)
    distinct = set("高血压thehypertension")
    assert stats["unk_char_rate"] == pytest.approx(1 / len(distinct))
    assert stats["unk_char_occurrence_rate"] == pytest.approx(1 / 18)  # 18 non-space characters


def test_candidates_fix_unk_first_then_fragmented_words(bert_tok: Any) -> None:
    assert find_domain_tokens(bert_tok, TEXTS) == EXPECTED
    assert find_domain_tokens(bert_tok, TEXTS, max_new=3) == EXPECTED[:3]
    assert find_domain_tokens(bert_tok, TEXTS, min_count=3) == ["hypertension"]
    assert find_domain_tokens(bert_tok, TEXTS, min_pieces=5) == EXPECTED[:-1]  # cafe: 4 pieces


def test_unknown_non_cjk_word_is_added_whole(bert_tok: Any) -> None:
    # "2" is unknown: the word gives [UNK]; "x2" is not CJK, so the whole word is a candidate.
    assert find_domain_tokens(bert_tok, ["x2 x2 the"]) == ["2", "x2"]


def test_expansion_adds_real_wordpiece_entries(bert_tok: Any) -> None:
    size = max(bert_tok.get_vocab().values()) + 1  # the fixture's vocabulary has a hole
    new, added = add_domain_tokens(bert_tok, [*EXPECTED, "the", "Hypertension", "a b"])
    # ω can continue a word ("aω"), so its ## form comes too; CJK characters never continue one;
    # known strings (also after normalisation) and strings split into two words are skipped.
    assert added == ["ω", "##ω", "压", "患", "的", "者", "hypertension", "cafe"]
    model_vocab = new.backend_tokenizer.get_vocab(with_added_tokens=False)
    assert [model_vocab[t] for t in added] == list(range(size, size + len(added)))
    assert len(new) == len(bert_tok) + len(added) and "压" not in bert_tok.get_vocab()
    assert type(new) is type(bert_tok) and new.all_special_tokens == bert_tok.all_special_tokens
    assert new.tokenize("高血压 Hypertensions aω") == [
        *["高", "血", "压", "hypertension", "##s", "a", "##ω"]
    ]
    assert new("高")["input_ids"][0] == bert_tok.cls_token_id
    assert unknown_characters(bert_tok, TEXTS, 2) == dict.fromkeys(["ω", "压", "患", "的", "者"], 2)
    assert unknown_characters(new, TEXTS, 2) == {}
    before, after = tokenization_stats(bert_tok, TEXTS), tokenization_stats(new, TEXTS)
    assert after["unk_rate"] < before["unk_rate"]
    assert after["pieces_per_word"] < before["pieces_per_word"]


def _mlm(folder: Path) -> Any:
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(str(folder))
    with torch.no_grad():
        model.cls.predictions.bias.normal_()  # the fresh head's bias is zeros: make it tell
    return model.eval()


def test_init_from_old_pieces_and_random_only_without_pieces(
    bert_tok: Any, tiny_bert_no_dropout: Path
) -> None:
    model = _mlm(tiny_bert_no_dropout)
    old_emb = model.get_input_embeddings().weight.detach().clone()
    old_bias = model.cls.predictions.bias.detach().clone()
    new, added = add_domain_tokens(bert_tok, EXPECTED)
    torch.manual_seed(0)
    report = init_new_embeddings(model, bert_tok, new, added)
    # from pieces: hypertension, cafe; ω ##ω 压 患 的 者 were [UNK]: random
    assert report == {"added": 8, "from_pieces": 2, "random": 6}
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == max(new.get_vocab().values()) + 1 == model.config.vocab_size
    assert torch.equal(emb[: old_emb.shape[0]], old_emb)
    bias = model.cls.predictions.bias
    for word in ("hypertension", "cafe"):
        pieces = bert_tok(word, add_special_tokens=False)["input_ids"]
        new_id = new.convert_tokens_to_ids(word)
        assert torch.allclose(emb[new_id], old_emb[pieces].mean(0))
        assert torch.allclose(bias[new_id], old_bias[pieces].mean())
    for token in ("ω", "##ω", "压"):
        new_id = new.convert_tokens_to_ids(token)
        assert emb[new_id].abs().sum() > 0 and torch.isfinite(emb[new_id]).all()
        assert torch.allclose(bias[new_id], old_bias.mean())
    assert model.get_output_embeddings().weight is emb  # tied head: nothing more to do


def test_save_reload_round_trip_gives_identical_logits(
    bert_tok: Any, tiny_bert_no_dropout: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = _mlm(tiny_bert_no_dropout)
    new, added = add_domain_tokens(bert_tok, EXPECTED)
    init_new_embeddings(model, bert_tok, new, added)
    model.save_pretrained(str(tmp_path))
    new.save_pretrained(str(tmp_path))
    tok2 = AutoTokenizer.from_pretrained(str(tmp_path))
    model2 = AutoModelForMaskedLM.from_pretrained(str(tmp_path)).eval()
    text = "高血压患者 hypertensions aω café"
    batch = new(text, return_tensors="pt")
    assert tok2(text, return_tensors="pt")["input_ids"].tolist() == batch["input_ids"].tolist()
    assert type(tok2) is type(new) and len(tok2) == len(new)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, model2(**batch).logits)


def test_other_tokenizer_models_get_added_tokens_and_untied_heads(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))  # WordLevel model
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert head is not emb
    old_emb, old_head = emb.detach().clone(), head.detach().clone()
    new, added = add_domain_tokens(tok, ["the", "good,bad", "hypertension", "血压"])
    assert added == ["good,bad", "hypertension", "血压"]
    # single-word added tokens do not fire inside a longer word; CJK ones match anywhere
    assert new.tokenize("good,bad hypertension hypertensions 高血压") == [
        *["good,bad", "hypertension", "<unk>", "高", "血压"]
    ]
    report = init_new_embeddings(model, tok, new, added)
    assert report == {"added": 3, "from_pieces": 1, "random": 2}
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    new_id = new.convert_tokens_to_ids("good,bad")
    pieces = [tok.convert_tokens_to_ids("good"), tok.convert_tokens_to_ids("bad")]
    assert torch.allclose(emb[new_id], old_emb[pieces].mean(0))
    assert torch.allclose(head[new_id], old_head[pieces].mean(0))
    assert head.shape[0] == emb.shape[0] == len(new)


def test_byte_level_bpe_candidates_are_plain_words() -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(["the patient and the doctor"] * 20, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|eos|>")
    texts = ["the patient has hypertension", "hypertension again", "高血压 高血压"]
    found = find_domain_tokens(tok, texts)
    assert found[0] == "hypertension" and not any("Ġ" in t or "高" in t for t in found)
    new, added = add_domain_tokens(tok, ["hypertension"])
    assert added == ["hypertension"]
    assert "hypertension" in new.tokenize("the hypertension")
    assert "hypertension" not in new.tokenize("the hypertensions")
    assert tokenization_stats(new, texts)["tokens"] < tokenization_stats(tok, texts)["tokens"]


runner = CliRunner()


def test_cli_vocab_writes_model_folder_and_refuses_to_overwrite(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    corpus = tmp_path / "domain.txt"
    corpus.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    out = tmp_path / "expanded"
    args = ["vocab", str(corpus), "--model", str(tiny_bert), "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "unk rate" in result.output and "8 tokens added" in result.output
    report = json.loads((out / "vocab-report.json").read_text(encoding="utf-8"))
    assert report["added"] == ["ω", "##ω", "压", "患", "的", "者", "hypertension", "cafe"]
    assert report["after"]["unk_rate"] < report["before"]["unk_rate"]
    assert report["init"]["added"] == 8 and report["unknown_chars_left"] == {}
    tok = AutoTokenizer.from_pretrained(str(out))
    config = AutoConfig.from_pretrained(str(out))
    assert max(tok.get_vocab().values()) + 1 == config.vocab_size
    assert config.architectures == ["BertForMaskedLM"]

    again = runner.invoke(app, args)
    assert again.exit_code == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "--overwrite" in lines[0] and "→" in lines[0]
    assert (out / "vocab-report.json").is_file()
    replaced = runner.invoke(app, [*args, "--overwrite", "--max-new", "2"])
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((out / "vocab-report.json").read_text())["added"] == ["ω", "##ω", "压"]

    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    refused = runner.invoke(app, [*args[:-1], str(other), "--overwrite"])
    assert refused.exit_code == 2 and "not a model folder" in refused.stderr
    assert (other / "keep.txt").read_text() == "mine"
    bad = runner.invoke(app, [*args[:-1], str(tmp_path / "x"), "--min-count", "0"])
    assert bad.exit_code == 2 and "--min-count" in bad.stderr
    itself = runner.invoke(app, [*args[:-1], str(tiny_bert), "--overwrite"])
    assert itself.exit_code == 2 and "input model folder" in itself.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["domain.txt", "expanded", "notes"]
