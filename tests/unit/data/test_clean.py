"""Text cleaning: NFKC, control characters, whitespace, Chinese spacing, dedupe."""

from __future__ import annotations

import unicodedata

import pytest

from domaintune.data.clean import clean_text, clean_token, dedupe


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ＡＢＣ ａｂｃ １２３", "ABC abc 123"),  # full-width letters and digits
        ("ﬁle", "file"),  # ligature
        ("x²", "x2"),
        ("ｶﾀｶﾅ", "カタカナ"),  # half-width katakana
        ("中文：测试，好", "中文:测试,好"),  # NFKC makes full-width punctuation ASCII
        ("plain ascii", "plain ascii"),
    ],
)
def test_nfkc(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_control_characters_are_removed() -> None:
    out = clean_text("a\x00b\x07 c\x1b[0m d\x7f\x85e")
    assert not any(unicodedata.category(ch) == "Cc" for ch in out)
    assert out.replace(" ", "") == "abc[0mde"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("co\u00adoperate", "cooperate"),  # soft hyphen
        ("zero\u200bwidth", "zerowidth"),  # zero-width space
        ("word\u2060joiner", "wordjoiner"),
        ("\ufeffbom in front", "bom in front"),
        ("中\u200b文", "中文"),
    ],
)
def test_invisible_format_characters_are_dropped_not_spaced(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_zero_width_joiner_is_kept_inside_emoji() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_text(f"hi {family}") == f"hi {family}"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  a   b  ", "a b"),
        ("a\t\tb\n\nc\r\nd", "a b c d"),
        ("a\u00a0b\u2003c\u3000d", "a b c d"),  # no-break, em and ideographic spaces
        ("\n\t ", ""),
    ],
)
def test_whitespace_runs_collapse_to_one_space(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    "text",
    [
        "我爱北京天安门。",
        "使用BERT模型进行中文分类",
        "这是 一个 测试",  # existing single spaces between CJK characters are kept
        "日本語のテキストです",
        "한국어 문장입니다",
        "疾病名称识别、乳腺癌与BRCA1基因。",
    ],
)
def test_cjk_text_is_unchanged(text: str) -> None:
    assert clean_text(text) == text


def test_cjk_spacing_is_only_collapsed() -> None:
    assert clean_text("中文  文本") == "中文 文本"
    assert clean_text("中文\u3000\u3000文本") == "中文 文本"
    assert clean_text("中文\t文本") == "中文 文本"
    assert " " not in clean_text("中文文本")


def test_clean_text_is_idempotent() -> None:
    raw = "  ＡＢＣ\x00中\u200b文  文本\u00a0!\t"
    once = clean_text(raw)
    assert clean_text(once) == once


def test_clean_token() -> None:
    assert clean_token("Ｔｏｋｅｎ") == "Token"
    assert clean_token("a b") == "ab"  # a token never gains inner spaces
    assert clean_token("\u200b") == "\u200b"  # cleaning would empty it: keep the original
    assert clean_token("\x00") == "\x00"


def test_dedupe_keeps_first_occurrences_and_counts_drops() -> None:
    items = [("a", 1), ("b", 2), ("a", 1), ("a", 3), ("b", 2), ("c", 4)]
    kept, dropped = dedupe(items, key=lambda x: x)
    assert kept == [("a", 1), ("b", 2), ("a", 3), ("c", 4)]
    assert dropped == 2


def test_dedupe_uses_the_key() -> None:
    kept, dropped = dedupe(["Hello", "hello", "HELLO", "bye"], key=str.lower)
    assert (kept, dropped) == (["Hello", "bye"], 2)


def test_dedupe_of_nothing_and_of_unique_items() -> None:
    assert dedupe([], key=lambda x: x) == ([], 0)
    assert dedupe([1, 2, 3], key=lambda x: x) == ([1, 2, 3], 0)
