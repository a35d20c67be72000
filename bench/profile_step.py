"""Where one MiniLM training step spends its time on this CPU (a diagnostic, not a benchmark).

Usage: ``.venv/bin/python bench/profile_step.py [--freeze-embeddings] [--length 40] [--batch 16]``

Prints forward+backward and optimizer time per step, then the torch profiler's top operators
grouped by input shape. Random token ids of a fixed length stand in for a length-grouped batch.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForSequenceClassification

from domaintune.models.aliases import resolve_alias


def main() -> None:
    """Time and profile a few full training steps of MiniLM sequence classification."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--freeze-embeddings", action="store_true")
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_alias("minilm"), num_labels=3, dtype=torch.float32
    )
    model.train()
    if args.freeze_embeddings:
        model.bert.embeddings.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=True)

    def step() -> tuple[float, float]:
        ids = torch.randint(1000, 20000, (args.batch, args.length))
        start = time.perf_counter()
        out = model(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            labels=torch.randint(0, 3, (args.batch,)),
        )
        out.loss.backward()
        middle = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return middle - start, time.perf_counter() - middle

    for _ in range(3):
        step()
    times = [step() for _ in range(args.steps)]
    print(
        f"trainable {sum(p.numel() for p in params):,} params; per step: "
        f"forward+backward {sum(t[0] for t in times) / len(times) * 1e3:.1f} ms, "
        f"optimizer {sum(t[1] for t in times) / len(times) * 1e3:.1f} ms"
    )
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(5):
            step()
    table = prof.key_averages(group_by_input_shape=True)
    print(table.table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
