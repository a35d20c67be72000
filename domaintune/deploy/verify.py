"""Self-verification of an export: its logits against the PyTorch model's on a data sample."""

from __future__ import annotations

import copy
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from domaintune.data.readers import Example
from domaintune.deploy.load import LoadedRun, Predictor
from domaintune.errors import DataError

SAMPLE_SIZE = 64


def sample_examples(
    loaded: LoadedRun, sample: str | Path | None = None, size: int = SAMPLE_SIZE
) -> tuple[list[Example], str]:
    """The first ``size`` examples of ``sample`` or of the run's test (else dev, train) file.

    Returns:
        The examples (labels dropped) and the file they came from.

    """
    from domaintune.data.stream import stream_split

    data = loaded.data
    spec = str(sample) if sample is not None else (data.test or data.validation or data.train)
    if spec is None:
        raise DataError(
            f"{loaded.run.root}: data: the run read a dataset, not files → pass --sample FILE "
            "(texts to verify the export on)"
        )
    cfg = data if sample is None else data.model_copy(update={"format": "auto"})
    try:
        examples = list(islice(stream_split(spec, cfg, loaded.task.kind), size))
    except DataError as error:
        raise DataError(
            f"{spec}: the verification sample cannot be read ({error}) → run from the folder "
            "you trained in, or pass --sample FILE"
        ) from None
    if not examples:
        raise DataError(f"{spec}: no examples to verify the export on → pass --sample FILE")
    return examples, spec


def compare(reference: Predictor, exported: Predictor, examples: list[Example]) -> dict[str, Any]:
    """Largest absolute logit difference and the share of equal predicted labels (or tags).

    Both run on the same padded batches; for token tasks only real (unpadded) positions count,
    and agreement is over tagged positions (first sub-words), after the task's own decoding
    (Viterbi with a CRF head).
    """
    import torch

    from domaintune.data.batching import sorted_batches
    from domaintune.data.pipeline import clean_example

    task, tokenizer = reference.task, reference.tokenizer
    examples = copy.deepcopy(examples)
    if reference.data.clean.normalize:
        for example in examples:
            clean_example(example)
    if reference.knowledge is not None:
        reference.knowledge.attach(examples, task.kind)
    encoded = task.encode(examples, tokenizer, reference.data.max_length)
    worst, agree, total = 0.0, 0, 0
    for indices in sorted_batches(encoded.lengths, reference.batch_size):
        sub = encoded.subset(indices)
        batch = task.collate(sub.features, tokenizer.pad_token_id)
        ours = reference.logits(batch).float().numpy()
        theirs = exported.logits(batch).float().numpy()
        if ours.ndim == 3:  # (B, T, C): only real positions
            mask = batch["attention_mask"].numpy().astype(bool)
            worst = max(worst, float(np.abs(ours - theirs)[mask].max(initial=0.0)))
        else:
            worst = max(worst, float(np.abs(ours - theirs).max(initial=0.0)))
        a = task.outputs(torch.from_numpy(ours), batch)
        b = task.outputs(torch.from_numpy(theirs), batch)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if task.kind == "tokens":
                tagged = sub.features["word_ids"][i][: len(x)] >= 0
                agree += int((x[tagged] == y[tagged]).sum())
                total += int(tagged.sum())
            else:
                agree += int(np.argmax(x) == np.argmax(y))
                total += 1
    return {
        "examples": len(examples),
        "max_abs_diff": worst,
        "label_agreement": round(agree / total, 6) if total else 1.0,
        "compared": "tags" if task.kind == "tokens" else "labels",
    }
