"""read_texts: the raw texts of any supported file, for corpus statistics (vocab expansion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from domaintune.data.readers import read_texts
from domaintune.errors import DataError


def test_each_format_gives_its_texts(tmp_path: Path) -> None:
    txt = tmp_path / "a.txt"
    txt.write_text("first doc\n\n 第二 \n", encoding="utf-8")
    assert read_texts(txt) == ["first doc", " 第二 "]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"body": "one", "label": 1}\n{"body": "二"}\n', encoding="utf-8")
    assert read_texts(jsonl, text_column="body") == ["one", "二"]  # labels not needed
    csv = tmp_path / "a.csv"
    csv.write_text("text,label\nhello,pos\n", encoding="utf-8")
    assert read_texts(csv) == ["hello"]
    conll = tmp_path / "a.conll"
    conll.write_text("the\tO\nfever\tB-D\n\n高\tB-D\n血\tI-D\n", encoding="utf-8")
    assert read_texts(conll) == ["the fever", "高 血"]


def test_problems_are_one_line_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found → "):
        read_texts(tmp_path / "missing.txt")
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"body": "one"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="no column 'text'"):
        read_texts(jsonl)
    latin = tmp_path / "b.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_texts(latin)
