"""Why prefix tuning's MLP is off by default: can a prefix fit 64 nicta-piboso examples?

Not part of ``make bench``: a diagnostic behind docs/methods.md ("Prefix tuning: why the MLP is
off by default"). Trains MiniLM's classification head alone, or a prefix (direct or through the
paper's MLP) plus the head, with AdamW on the first N training sentences for a few steps, and
prints the loss and the mean absolute prefix entry every 10 steps.

    python bench/prefix_probe.py head 1e-2
    python bench/prefix_probe.py prefix 1e-2 '{"projection": false}'
    python bench/prefix_probe.py prefix 3e-3 '{"projection": true}'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "nicta-piboso" / "train.jsonl"


def main() -> None:
    """Train for ``--steps`` steps and print the loss (and the prefix's size) every 10."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["head", "prefix"])
    parser.add_argument("lr", type=float)
    parser.add_argument("method", nargs="?", default="{}", help="prefix section options (JSON)")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from domaintune.config.methods import PrefixConfig
    from domaintune.methods import prefix
    from domaintune.models.aliases import resolve_alias

    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = resolve_alias("minilm")
    lines = DATA.read_text(encoding="utf-8").splitlines()[: args.examples]
    rows = [json.loads(line) for line in lines]
    label_ids = {label: i for i, label in enumerate(sorted({r["label"] for r in rows}))}
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(label_ids), attn_implementation="sdpa"
    )
    if args.mode == "prefix":
        model = prefix.apply(model, PrefixConfig(name="prefix", **json.loads(args.method)))
    else:
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith("classifier"))
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=args.lr)
    model.train()
    for step in range(args.steps):
        start = (step * 16) % len(rows)
        batch = rows[start : start + 16]
        inputs = tokenizer(
            [r["text"] for r in batch],
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )
        labels = torch.tensor([label_ids[r["label"]] for r in batch])
        loss = model(**inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        if step % 10 == 0:
            size = ""
            if args.mode == "prefix":
                with torch.no_grad():
                    size = f"  prefix |mean| {model.prefix_encoder().abs().mean():.3f}"
            print(f"step {step:4d}  loss {loss.item():.4f}{size}", flush=True)
        optimizer.step()


if __name__ == "__main__":
    main()
