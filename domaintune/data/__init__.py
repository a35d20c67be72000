"""Data: readers, cleaning, labels, splitting, augmentation, encoding cache, batching, padding."""

from domaintune.data import augment_contextual, augment_eda, augment_mentions, augment_translate
from domaintune.data.readers import read_conll, read_csv, read_hf, read_jsonl, read_txt

READERS = {
    "csv": read_csv,
    "jsonl": read_jsonl,
    "txt": read_txt,
    "conll": read_conll,
    "hf": read_hf,
}

# data.augment[*].name -> augment(examples, section, context) -> ((source, example) pairs, info)
AUGMENTATIONS = {
    "eda": augment_eda.augment,
    "mention_replacement": augment_mentions.augment,
    "contextual": augment_contextual.augment,
    "back_translation": augment_translate.augment,
}

__all__ = ["AUGMENTATIONS", "READERS"]
