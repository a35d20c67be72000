"""Readers: CSV, JSONL, TXT, CoNLL, HF save_to_disk folders and the built-in NCBI data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from domaintune.config.sections import DataConfig
from domaintune.data import READERS
from domaintune.data.readers import detect_format, read_split, resolve_path
from domaintune.errors import DataError


def config(path: Path | str, **options: Any) -> DataConfig:
    return DataConfig(train=str(path), **options)


def read(path: Path, kind: str = "text", need_labels: bool = True, **options: Any) -> list[dict]:
    return read_split(str(path), config(path, **options), kind, need_labels)  # type: ignore[arg-type]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    return path


# ---------------------------------------------------------------------------------------- JSONL
def test_jsonl_text_rows(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"text": "good film", "label": "pos", "id": 1}\n\n{"text": "糟糕的电影", "label": 0}\n',
        encoding="utf-8",
    )
    assert read(path) == [{"text": "good film", "label": "pos"}, {"text": "糟糕的电影", "label": 0}]


def test_jsonl_without_labels_and_custom_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [{"body": "a", "cat": "x"}, {"body": "b"}])
    assert read(path, need_labels=False, text_column="body") == [{"text": "a"}, {"text": "b"}]
    assert read(path, text_column="body", label_column="cat", need_labels=False) == [
        {"text": "a"},
        {"text": "b"},
    ]


def test_json_file_holding_one_list(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"text": "a", "label": 1}, {"text": "b", "label": 2}], indent=1))
    assert read(path) == [{"text": "a", "label": 1}, {"text": "b", "label": 2}]


def test_jsonl_token_rows(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "ner.jsonl",
        [
            {"tokens": ["Aspirin", "helps"], "tags": ["B-Chem", "O"]},
            {"tokens": ["x", 3], "tags": ["O", "O"]},
        ],
    )
    assert read(path, "tokens") == [
        {"tokens": ["Aspirin", "helps"], "tags": ["B-Chem", "O"]},
        {"tokens": ["x", "3"], "tags": ["O", "O"]},
    ]
    other = write_jsonl(tmp_path / "other.jsonl", [{"words": ["y"], "ner": ["B-X"]}])
    assert read(other, "tokens", tokens_column="words", tags_column="ner") == [
        {"tokens": ["y"], "tags": ["B-X"]}
    ]
    with pytest.raises(DataError, match=re.escape(f"{other}:1: no list column 'tokens'")):
        read(other, "tokens")


def test_jsonl_tags_must_match_tokens(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ner.jsonl", [{"tokens": ["a", "b"], "tags": ["O"]}])
    message = f"{path}:1: column 'tags' must be a list as long"
    with pytest.raises(DataError, match=re.escape(message)):
        read(path, "tokens")


def test_invalid_jsonl_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": }\n')
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: invalid JSON")
    assert len(message.splitlines()) == 1


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('{"text": "a", "label": 1}\n["b", 2]\n')
    with pytest.raises(DataError, match=re.escape(f"{path}:2: expected a JSON object, got list")):
        read(path)


# ------------------------------------------------------------------------------------------ CSV
def test_csv_with_text_pair_column(tmp_path: Path) -> None:
    path = tmp_path / "nli.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["premise", "hypothesis", "label"])
        writer.writerow(["A man, a plan.", 'He said "hi"', "entailment"])
        writer.writerow(["多行\n文本", "假设", "neutral"])
    rows = read(path, text_column="premise", text_pair_column="hypothesis")
    assert rows == [
        {"text": "A man, a plan.", "text_pair": 'He said "hi"', "label": "entailment"},
        {"text": "多行\n文本", "text_pair": "假设", "label": "neutral"},
    ]


def test_tsv_by_extension_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("\ufefftext\tlabel\nhello, world\t1\n", encoding="utf-8")
    assert read(path) == [{"text": "hello, world", "label": "1"}]


def test_csv_missing_label_column_names_the_column(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,category\nhello,greeting\n")
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: ")
    assert "label column 'label'" in message and "data.label_column" in message


def test_csv_empty_label_cell_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\na,x\nb,\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: no value in label column 'label'")):
        read(path)


def test_csv_missing_text_column_names_the_column(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("sentence,label\nhello,1\n")
    with pytest.raises(DataError, match=r"no column 'text' \(found \['label', 'sentence'\]\)"):
        read(path)


def test_csv_cannot_hold_tokens_and_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\na,1\n")
    with pytest.raises(DataError, match="CSV cannot hold token-level tags"):
        read(path, "tokens")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        read(empty)


# ------------------------------------------------------------------------------------------ TXT
def test_txt_reads_non_empty_lines_without_labels(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("first line\n\n   \n第二行\n", encoding="utf-8")
    assert read(path, need_labels=False) == [{"text": "first line"}, {"text": "第二行"}]


def test_txt_with_labels_needed_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("a\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: a .txt file has no labels")):
        read(path, need_labels=True)


# ---------------------------------------------------------------------------------------- CoNLL
CONLL = (
    "-DOCSTART- -X- -X- O\n"
    "\n"
    "EU NNP B-NP B-ORG\n"
    "rejects VBZ B-VP O\n"
    "German JJ B-NP B-MISC\n"
    "\n"
    "\n"
    "-DOCSTART- -X- -X- O\n"
    "Peter\tNNP\tB-NP\tB-PER\n"
    "Blackburn\tNNP\tB-NP\tI-PER\n"
    "\n"
    "北京 NR B-NP B-LOC"  # no final newline
)


def test_conll_skips_docstart_and_splits_on_spaces_or_tabs(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_text(CONLL, encoding="utf-8")
    assert read(path, "tokens") == [
        {"tokens": ["EU", "rejects", "German"], "tags": ["B-ORG", "O", "B-MISC"]},
        {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
        {"tokens": ["北京"], "tags": ["B-LOC"]},
    ]


def test_conll_tag_column_option_and_no_labels(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_text(CONLL, encoding="utf-8")
    chunks = read(path, "tokens", conll_tag_column=2)
    assert chunks[0]["tags"] == ["B-NP", "B-VP", "B-NP"]
    assert read(path, "tokens", need_labels=False)[1] == {"tokens": ["Peter", "Blackburn"]}


def test_malformed_conll_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.conll"
    path.write_text("Aspirin\tB-Chem\nhelps\tO\n\nlonely\nx\tO\n")
    with pytest.raises(DataError) as info:
        read(path, "tokens")
    message = str(info.value)
    assert message.startswith(f"{path}:4: 'lonely': ")
    assert len(message.splitlines()) == 1


def test_conll_tag_column_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_text("a\tO\n")
    message = f"{path}:1: no column 5 → set data.conll_tag_column"
    with pytest.raises(DataError, match=re.escape(message)):
        read(path, "tokens", conll_tag_column=5)


# ------------------------------------------------------------------------------- paths, formats
def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    spec = str(tmp_path / "nope.csv")
    with pytest.raises(DataError) as info:
        read_split(spec, config(spec), "text")
    assert str(info.value).startswith(f"{spec}: data file not found → ")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.TSV", "csv"),
        ("a.jsonl", "jsonl"),
        ("a.json", "jsonl"),
        ("a.txt", "txt"),
        ("a.conll", "conll"),
        ("a.bio", "conll"),
        ("a.iob", "conll"),
        ("a.bmes", "conll"),
    ],
)
def test_detect_format_by_extension(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt
    assert fmt in READERS


def test_detect_format_folder_and_unknown_extension(tmp_path: Path) -> None:
    assert detect_format(tmp_path) == "hf"
    with pytest.raises(DataError, match=r"extension '\.xlsx' → set data.format"):
        detect_format(tmp_path / "a.xlsx")


def test_explicit_format_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.dat"
    path.write_text("a\tO\nb\tB-X\n")
    assert read(path, "tokens", format="conll") == [{"tokens": ["a", "b"], "tags": ["O", "B-X"]}]


def test_builtin_ncbi_train_resolves_and_reads() -> None:
    spec = "builtin:ncbi-disease/train.conll"
    assert resolve_path(spec).is_file()
    sentences = read_split(spec, config(spec), "tokens")
    assert len(sentences) == 5432
    assert all(len(s["tokens"]) == len(s["tags"]) > 0 for s in sentences)
    assert {t for s in sentences for t in s["tags"]} == {"O", "B-Disease", "I-Disease"}


def test_unknown_builtin_lists_what_exists() -> None:
    with pytest.raises(DataError, match=r"builtin:ncbi-disease/\{train,dev,test\}\.conll"):
        resolve_path("builtin:nope/train.conll")


# ------------------------------------------------------------------------- HF save_to_disk
@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import datasets

    root = tmp_path_factory.mktemp("hf")
    text = datasets.Dataset.from_dict(
        {"text": ["good", "bad", "fine"], "label": [1, 0, 1]}
    ).cast_column("label", datasets.ClassLabel(names=["neg", "pos"]))
    tokens = datasets.Dataset.from_dict(
        {"tokens": [["Aspirin", "helps"], ["x"]], "tags": [[1, 0], [0]]}
    ).cast_column("tags", datasets.Sequence(datasets.ClassLabel(names=["O", "B-Chem"])))
    text.save_to_disk(str(root / "text"))
    tokens.save_to_disk(str(root / "tokens"))
    datasets.DatasetDict({"train": text, "test": text}).save_to_disk(str(root / "dict"))
    return {"text": root / "text", "tokens": root / "tokens", "dict": root / "dict"}


def test_hf_folder_class_label_ids_become_names(hf_folders: dict[str, Path]) -> None:
    assert read(hf_folders["text"]) == [
        {"text": "good", "label": "pos"},
        {"text": "bad", "label": "neg"},
        {"text": "fine", "label": "pos"},
    ]


def test_hf_folder_tag_sequences_become_names(hf_folders: dict[str, Path]) -> None:
    assert read(hf_folders["tokens"], "tokens", format="hf") == [
        {"tokens": ["Aspirin", "helps"], "tags": ["B-Chem", "O"]},
        {"tokens": ["x"], "tags": ["O"]},
    ]


def test_hf_folder_with_several_splits_points_to_data_dataset(hf_folders: dict[str, Path]) -> None:
    with pytest.raises(DataError, match=r"holds several splits → use data\.dataset"):
        read(hf_folders["dict"])
