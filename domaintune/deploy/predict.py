"""Batch prediction: streamed input, length-sorted batches, outputs in input order.

The input file is read in chunks (``CHUNK_SIZE`` examples; never the whole file); each chunk is
cleaned and encoded as in training, cut into batches sorted by length (padding is the cost: see
DESIGN.md section 5), run through the predictor's backend (PyTorch or onnxruntime) and decoded by
the task's own ``outputs`` and ``format_predictions``, so rows equal ``api.predict``'s. Rows are
written as JSONL or CSV in the input's order.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from domaintune.data.batching import sorted_batches
from domaintune.data.encode import Encoded
from domaintune.data.readers import Example, read_split
from domaintune.data.stream import stream_split
from domaintune.deploy.load import Predictor
from domaintune.errors import ConfigError, RunError

CHUNK_SIZE = 4096
OUTPUT_FORMATS = ("jsonl", "csv")


def predict_outputs(
    predictor: Predictor, examples: list[Example], batch_size: int | None = None
) -> tuple[list[Any], Encoded]:
    """The task's raw outputs (cleaned in place as in training), in the encoded order.

    One output per example, except for a language model: one per packed block of ``encoded``.
    """
    from domaintune.data.pipeline import clean_example

    task, tokenizer = predictor.task, predictor.tokenizer
    if predictor.data.clean.normalize:
        for example in examples:
            clean_example(example)
    if predictor.knowledge is not None:  # the same facts as in training, from the run's graph
        predictor.knowledge.attach(examples, task.kind)
    encoded = task.encode(examples, tokenizer, predictor.data.max_length)
    outputs: list[Any] = [None] * len(encoded)
    for indices in sorted_batches(encoded.lengths, batch_size or predictor.batch_size):
        batch = task.collate(encoded.subset(indices).features, tokenizer.pad_token_id)
        logits = predictor.logits(batch)  # (B, C) or (B, T, C)
        for index, output in zip(indices, task.outputs(logits, batch), strict=True):
            outputs[index] = output
    return outputs, encoded


def predict_examples(
    predictor: Predictor, examples: list[Example], batch_size: int | None = None
) -> list[dict[str, Any]]:
    """Prediction rows for in-memory examples (one chunk), in their order."""
    check_predicts(predictor)
    if not examples:
        return []
    originals = [e.get("text") for e in examples]
    outputs, encoded = predict_outputs(predictor, examples, batch_size)
    task = predictor.task
    rows: list[dict[str, Any]] = task.format_predictions(
        outputs, examples, encoded, predictor.tokenizer
    )
    if task.kind == "text":  # entity offsets refer to the cleaned text, so keep that one
        for row, original in zip(rows, originals, strict=True):
            row["text"] = original
    return rows


def check_predicts(predictor: Predictor) -> None:
    """Refuse language-modelling and generation runs in one line (no logits-based predictions)."""
    if predictor.task.kind == "gen":
        raise RunError(
            f"{predictor.source}: a generation run generates at its final evaluation "
            "(predictions-<split>.jsonl in the run folder) → put the inputs in data.test, or "
            "load final/ with transformers and call generate"
        )
    if predictor.task.kind == "lm":
        raise RunError(
            f"{predictor.source}: a language_modeling run has no labels to predict → use "
            "'domaintune evaluate' for perplexity, or fine-tune a task from it (model.init_from)"
        )


def predict_inputs(predictor: Predictor, inputs: str | Path | list[str]) -> list[dict[str, Any]]:
    """Prediction rows for a list of texts or a whole input file, in input order.

    Args:
        predictor: From :func:`domaintune.deploy.load.open_predictor`.
        inputs: Texts, or a ``.jsonl``/``.csv``/``.txt``/``.conll`` file (read at once; use
            :func:`predict_file` to stream a large one).

    """
    if isinstance(inputs, list):
        examples: list[Example] = [{"text": t} for t in inputs]
    else:
        data = predictor.data.model_copy(update={"format": "auto"})
        examples = read_split(str(inputs), data, predictor.task.kind, need_labels=False)
    return predict_examples(predictor, examples)


def chunks(examples: Iterable[Example], size: int) -> Iterator[list[Example]]:
    """Consecutive lists of at most ``size`` examples."""
    iterator = iter(examples)
    while chunk := list(islice(iterator, size)):
        yield chunk


def output_format(path: Path, fmt: str | None) -> str:
    """``jsonl`` or ``csv``: the one asked for, or the output file's extension."""
    chosen = fmt or ("csv" if path.suffix.lower() in {".csv", ".tsv"} else "jsonl")
    if chosen not in OUTPUT_FORMATS:
        raise ConfigError(f"--format: {chosen!r}: unknown output format → use jsonl or csv")
    return chosen


class RowWriter:
    """Write prediction rows as JSONL, or as CSV (lists and dicts as JSON in their cell)."""

    def __init__(self, handle: IO[str], fmt: str) -> None:
        """Write to an open text ``handle`` in ``fmt`` (``jsonl`` or ``csv``)."""
        self.handle = handle
        self.fmt = fmt
        self.csv: csv.DictWriter[str] | None = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows."""
        for row in rows:
            if self.fmt == "jsonl":
                self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                continue
            if self.csv is None:
                self.csv = csv.DictWriter(self.handle, fieldnames=list(row))
                self.csv.writeheader()
            self.csv.writerow(
                {
                    k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                    for k, v in row.items()
                }
            )


def predict_file(
    predictor: Predictor,
    inputs: str | Path,
    output: str | Path,
    *,
    fmt: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict every example of ``inputs`` into ``output`` (written atomically).

    Args:
        predictor: From :func:`domaintune.deploy.load.open_predictor`.
        inputs: ``.jsonl``/``.csv``/``.txt``/``.conll`` file, read in chunks.
        output: JSONL or CSV file (by ``fmt`` or the extension).
        fmt: ``jsonl`` or ``csv``; default from the output's extension.
        chunk_size: Examples read, sorted and predicted together.
        batch_size: Examples per model call (default: the run's ``eval_batch_size``).
        progress: Show a progress bar on a terminal.

    Returns:
        ``{"examples", "seconds", "examples_per_second", "backend", "precision", "output"}``.

    """
    check_predicts(predictor)
    out = Path(output)
    chosen = output_format(out, fmt)
    data = predictor.data.model_copy(update={"format": "auto"})
    examples = stream_split(str(inputs), data, predictor.task.kind)
    console = Console(stderr=True)
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]predict"),
        TextColumn("{task.completed} examples"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}"),
        console=console,
        disable=not (progress and console.is_terminal),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    count, start = 0, time.perf_counter()
    try:
        with bar, tmp.open("w", encoding="utf-8", newline="") as handle:
            job = bar.add_task("predict", total=None, rate="")
            writer = RowWriter(handle, chosen)
            for chunk in chunks(examples, chunk_size):
                writer.write(predict_examples(predictor, chunk, batch_size))
                count += len(chunk)
                rate = count / max(time.perf_counter() - start, 1e-9)
                bar.update(job, completed=count, rate=f"{rate:.1f} ex/s")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    seconds = time.perf_counter() - start
    return {
        "examples": count,
        "seconds": round(seconds, 3),
        "examples_per_second": round(count / seconds, 1) if seconds else None,
        "backend": predictor.backend,
        "precision": predictor.precision,
        "output": str(out),
    }
