"""BLEU, chrF, ROUGE (Chinese included) and exact match on hand-checked cases."""

from __future__ import annotations

import pytest

from domaintune.evaluation.generation_metrics import CJKRougeTokenizer, generation_metrics

ALL = ["rouge1", "rouge2", "rouge_l", "bleu", "chrf", "exact_match"]


def test_perfect_predictions_score_the_maximum() -> None:
    refs = ["the patient has a mild fever today", "profit rose in the market this year"]
    scores = generation_metrics(refs, refs, ALL)
    for name in ("rouge1", "rouge2", "rouge_l", "bleu", "chrf"):
        assert scores[name] == pytest.approx(100.0), name
    assert scores["exact_match"] == 1.0
    assert scores["generated"] == 2


def test_rouge_l_on_a_hand_computed_english_case() -> None:
    # LCS("the patient has fever", "the patient had a fever") = 3 (the patient fever):
    # P = 3/4, R = 3/5, F = 2PR/(P+R) = 2/3.
    scores = generation_metrics(["the patient has fever"], ["the patient had a fever"], ALL)
    assert scores["rouge_l"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert scores["exact_match"] == 0.0


def test_chinese_is_scored_per_character() -> None:
    from rouge_score.rouge_scorer import RougeScorer

    reference, prediction = "患者血糖高", "患者血压高"
    default = RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    assert default == 0.0  # rouge-score's own tokenizer drops CJK characters
    assert CJKRougeTokenizer().tokenize("患者 has 血糖") == ["患", "者", "has", "血", "糖"]
    scores = generation_metrics([prediction], [reference], ALL)
    assert scores["rouge1"] == pytest.approx(80.0)  # 4 of 5 characters
    assert scores["rouge_l"] == pytest.approx(80.0)
    assert "tok:zh" in scores["bleu_signature"]


def test_exact_match_ignores_whitespace_but_not_case() -> None:
    scores = generation_metrics(["a  mild\nfever ", "Fever"], ["a mild fever", "fever"], ALL)
    assert scores["exact_match"] == 0.5


def test_only_requested_metrics_are_computed() -> None:
    assert set(generation_metrics(["a"], ["a"], ["chrf"])) == {"chrf", "generated"}
    assert generation_metrics([], [], ALL) == {"generated": 0}
