"""Data: readers, cleaning, labels, splitting, encoding cache, batching and padding."""

from domaintune.data.readers import read_conll, read_csv, read_hf, read_jsonl, read_txt

READERS = {
    "csv": read_csv,
    "jsonl": read_jsonl,
    "txt": read_txt,
    "conll": read_conll,
    "hf": read_hf,
}

__all__ = ["READERS"]
