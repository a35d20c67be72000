"""Reference fine-tuning script for the domaintune benchmark.

This is deliberately the plain Hugging Face ``Trainer`` recipe that the
transformers tutorials teach (sequence classification and token
classification). It is the *reference* side of the benchmark that domaintune
is compared against, so it must stay plain: do not optimise it (no length
grouping, no thread tuning, no mixed precision, no custom samplers, no
caching tricks). Changing it changes what the benchmark measures.

Example:
    python bench/hf_reference.py --task classification \
        --data-dir /work/shared/data/financial-phrasebank \
        --model /path/to/model --result-json runs/hf_cls.json

"""

from __future__ import annotations

import argparse
import json
import re
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, load_dataset
from seqeval.metrics import f1_score as seq_f1
from seqeval.metrics import precision_score as seq_precision
from seqeval.metrics import recall_score as seq_recall
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, f1_score
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainingArguments,
)

# Names used in the result JSON for the metrics that compute_metrics returns.
RENAME = {"precision": "entity_precision", "recall": "entity_recall", "f1": "entity_f1"}
# Trainer bookkeeping keys that are not quality metrics.
SKIP = set(["loss", "runtime", "samples_per_second", "steps_per_second", "epoch", "step"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments to parse; ``None`` means ``sys.argv[1:]``.

    Returns:
        The parsed arguments.

    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["classification", "ner"], required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--model", required=True, help="local model folder")
    p.add_argument("--lr", type=float, default=5e-5)  # tutorials: 5e-5 for both tasks
    for name, default in [("epochs", 3), ("batch-size", 16), ("seed", 42)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--output-dir", type=Path, help="Trainer work folder (default: temp)")
    p.add_argument("--result-json", type=Path, required=True)
    for name in ("train", "eval"):  # first N examples; 0 = all; smoke tests only
        p.add_argument(f"--limit-{name}", type=int, default=0)
    return p.parse_args(argv)


def read_conll(path: Path) -> dict[str, list[list[str]]]:
    """Read a two-column ``token<TAB>tag`` CoNLL file.

    Args:
        path: File with one token per line and a blank line between sentences.

    Returns:
        A dict with ``tokens`` and ``ner_tags`` (one list per sentence).

    """
    blocks = re.split(r"\n\s*\n", path.read_text(encoding="utf-8").strip())
    sents = [[line.split("\t") for line in b.splitlines()] for b in blocks]
    return {
        "tokens": [[tok for tok, _ in sent] for sent in sents],
        "ner_tags": [[tag for _, tag in sent] for sent in sents],
    }


def tokenize_splits(raw: Any, preprocess: Any, args: argparse.Namespace) -> dict:
    """Apply the ``--limit-*`` options, then ``preprocess`` (batched) to each split."""
    splits = {}
    for name in ("train", "dev", "test"):
        n = args.limit_train if name == "train" else args.limit_eval
        ds = raw[name].select(range(min(n, len(raw[name])))) if n > 0 else raw[name]
        splits[name] = ds.map(preprocess, batched=True, remove_columns=ds.column_names)
    return splits


def load_classification(args: argparse.Namespace, tokenizer: Any) -> tuple[dict, list[str]]:
    """Load and tokenize the JSONL classification splits.

    Args:
        args: Parsed command line.
        tokenizer: The model's tokenizer.

    Returns:
        The tokenized splits by name and the sorted label names.

    """
    files = {s: str(args.data_dir / f"{s}.jsonl") for s in ("train", "dev", "test")}
    raw = load_dataset("json", data_files=files)
    labels = sorted(set(raw["train"]["label"]))
    label2id = {name: i for i, name in enumerate(labels)}

    def preprocess(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(batch["text"], truncation=True, max_length=args.max_length)
        enc["labels"] = [label2id[name] for name in batch["label"]]
        return enc

    return tokenize_splits(raw, preprocess, args), labels


def load_ner(args: argparse.Namespace, tokenizer: Any) -> tuple[dict, list[str]]:
    """Load CoNLL splits and tokenize them with tutorial-style label alignment.

    Only the first sub-word of each word keeps its label; other sub-words and
    special tokens get -100, so the loss and the metrics ignore them.

    Args:
        args: Parsed command line.
        tokenizer: The model's (fast) tokenizer.

    Returns:
        The tokenized splits by name and the sorted tag names.

    """
    raw = {
        s: Dataset.from_dict(read_conll(args.data_dir / f"{s}.conll"))
        for s in ("train", "dev", "test")
    }
    labels = sorted({t for sent in raw["train"]["ner_tags"] for t in sent})
    label2id = {name: i for i, name in enumerate(labels)}

    def preprocess(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(
            batch["tokens"],
            truncation=True,
            max_length=args.max_length,
            is_split_into_words=True,
        )
        all_labels = []
        for i, tags in enumerate(batch["ner_tags"]):
            previous, ids = None, []
            for word_id in enc.word_ids(batch_index=i):
                first = word_id is not None and word_id != previous
                ids.append(label2id[tags[word_id]] if first else -100)
                previous = word_id
            all_labels.append(ids)
        enc["labels"] = all_labels
        return enc

    return tokenize_splits(raw, preprocess, args), labels


def classification_metrics(pred: EvalPrediction) -> dict[str, float]:
    """Accuracy and macro-F1 over the argmax of the logits."""
    y_pred = np.argmax(pred.predictions, axis=-1)
    y_true = pred.label_ids
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro")),
    }


def make_ner_metrics(labels: list[str]) -> Any:
    """Build a compute_metrics function for entity-level seqeval scores.

    Args:
        labels: Tag names indexed by label id.

    Returns:
        A function giving strict IOB2 entity precision, recall and F1.

    """

    def compute(pred: EvalPrediction) -> dict[str, float]:
        y_pred = np.argmax(pred.predictions, axis=-1)
        true_tags, pred_tags = [], []
        for p_row, t_row in zip(y_pred, pred.label_ids, strict=True):
            keep = t_row != -100
            true_tags.append([labels[t] for t in t_row[keep]])
            pred_tags.append([labels[p] for p in p_row[keep]])
        kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
        return {
            "precision": float(seq_precision(true_tags, pred_tags, **kw)),
            "recall": float(seq_recall(true_tags, pred_tags, **kw)),
            "f1": float(seq_f1(true_tags, pred_tags, **kw)),
        }

    return compute


def clean(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """Strip the Trainer's key prefix, keep quality metrics only, rename NER keys."""
    out = {}
    for key, value in metrics.items():
        name = key.removeprefix(prefix)
        if name not in SKIP:
            out[RENAME.get(name, name)] = float(value)
    return out


def best_dev_metrics(trainer: Trainer) -> dict[str, float]:
    """Dev metrics of the checkpoint that ``load_best_model_at_end`` restored."""
    best = trainer.state.best_model_checkpoint
    step = int(re.search(r"checkpoint-(\d+)", best).group(1)) if best else None
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    chosen = next((h for h in evals if h.get("step") == step), evals[-1])
    out = clean(chosen, "eval_")
    if "epoch" in chosen:
        out["epoch"] = float(chosen["epoch"])
    return out


def main(argv: list[str] | None = None) -> None:
    """Fine-tune, evaluate on test and write the result JSON."""
    args = parse_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if args.task == "classification":
        splits, labels = load_classification(args, tokenizer)
        model_cls = AutoModelForSequenceClassification
        collator = DataCollatorWithPadding(tokenizer=tokenizer)
        compute_metrics = classification_metrics
        best_metric = "accuracy"
    else:
        splits, labels = load_ner(args, tokenizer)
        model_cls = AutoModelForTokenClassification
        collator = DataCollatorForTokenClassification(tokenizer=tokenizer)
        compute_metrics = make_ner_metrics(labels)
        best_metric = "f1"

    model = model_cls.from_pretrained(
        args.model,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="hf_reference_"))
    training_args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model=best_metric,
        save_total_limit=1,
        seed=args.seed,
        report_to="none",
        logging_steps=50,
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits["dev"],
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
    )

    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start

    test = trainer.predict(splits["test"], metric_key_prefix="test")
    n_train = len(splits["train"])
    result = {
        "task": args.task,
        "train_seconds": train_seconds,
        "train_samples_per_second": n_train * args.epochs / train_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "test": clean(test.metrics, "test_"),
        "dev_best": best_dev_metrics(trainer),
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "max_length": args.max_length,
        "n_train": n_train,
        "n_test": len(splits["test"]),
    }
    args.result_json.parent.mkdir(parents=True, exist_ok=True)
    args.result_json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
