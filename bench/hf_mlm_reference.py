"""Reference masked-LM DAPT script for the domaintune benchmark.

The plain Hugging Face recipe (``run_mlm.py`` style) that tutorials teach: tokenise the raw
text, concatenate and cut it into fixed blocks, ``DataCollatorForLanguageModeling`` (15%
masking), ``BertForMaskedLM`` (``AutoModelForMaskedLM``) and ``Trainer``. It is the *reference*
side of the benchmark, so it must stay plain: no mixed precision, no custom heads, no thread
tuning. Changing it changes what the benchmark measures.

Example:
    python bench/hf_mlm_reference.py --train ../shared/data/pubmed-abstracts/train.txt \
        --model /path/to/minilm --output-dir bench/work/ref --result-json bench/work/ref.json

"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import time
from pathlib import Path

from datasets import Dataset
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)


def main() -> None:
    """Train, save the model, write timing to ``--result-json``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--result-json", required=True)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    lines = [t for t in Path(args.train).read_text(encoding="utf-8").splitlines() if t.strip()]
    raw = Dataset.from_dict({"text": lines})
    tokenized = raw.map(
        lambda b: tokenizer(b["text"], return_special_tokens_mask=True),
        batched=True,
        remove_columns=["text"],
    )

    def group_texts(examples: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
        concatenated = {k: list(itertools.chain.from_iterable(examples[k])) for k in examples}
        total = len(concatenated["input_ids"]) // args.block_size * args.block_size
        return {
            k: [t[i : i + args.block_size] for i in range(0, total, args.block_size)]
            for k, t in concatenated.items()
        }

    blocks = tokenized.map(group_texts, batched=True, batch_size=1000)
    model = AutoModelForMaskedLM.from_pretrained(args.model)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=blocks,
        data_collator=collator,
        processing_class=tokenizer,
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.save_model(str(Path(args.output_dir) / "final"))
    steps = trainer.state.global_step
    blocks_seen = steps * args.batch_size
    if args.max_steps < 0:  # the last batch of an epoch may be short
        blocks_seen = min(blocks_seen, round(len(blocks) * args.epochs))
    tokens = blocks_seen * args.block_size
    result = {
        "train_seconds": seconds,
        "steps": steps,
        "blocks": len(blocks),
        "tokens_per_second": tokens / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_dir": str(Path(args.output_dir) / "final"),
    }
    Path(args.result_json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
