"""Tiny generation models saved with save_pretrained: a ChatML Llama, T5 and BART.

Tokenizers are byte-level BPEs trained in milliseconds on a few sentences, so everything is
built offline. The Llama carries SmolLM2-135M-Instruct's own chat template (copied from the
GGUF's ``tokenizer.chat_template``) with pad = eos = ``<|im_end|>``, as SmolLM2 has.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tests.conftest import WORDS

# SmolLM2-135M-Instruct's chat template, verbatim.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    "system user assistant summarise translate the text",
    " ".join(WORDS),
    "血糖高 the patient has a mild fever and no sign of cancer.",
]


def bpe_tokenizer(specials: list[str], post: Any = None, **tokens: str) -> Any:
    """A byte-level BPE tokenizer (specials first, ids 0..) as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 4, trainer)
    backend.post_processor = post(backend) if post else processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **tokens)


def _append(template: str) -> Any:
    from tokenizers import processors

    def build(backend: Any) -> Any:
        parts = template.split()
        specials = [(p, backend.token_to_id(p)) for p in parts if p != "$A"]
        return processors.TemplateProcessing(single=template, special_tokens=specials)

    return build


def make_chat_llama(folder: Path) -> Path:
    """A 2-layer, 32-wide Llama with SmolLM2's ChatML template; pad = eos = <|im_end|>."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = bpe_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = SMOLLM2_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def make_tiny_t5(folder: Path) -> Path:
    """A 2-layer, 32-wide T5 (pad 0 starts the decoder, eos 1 ends every text)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = bpe_tokenizer(
        ["<pad>", "</s>", "<unk>"],
        post=_append("$A </s>"),
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    config = T5Config(  # type: ignore[call-arg]  # decoder_start_token_id goes through **kwargs
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def make_tiny_bart(folder: Path) -> Path:
    """A 2-layer, 32-wide BART (``<s> text </s>``; eos 2 starts the decoder, as BART's does)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = bpe_tokenizer(
        ["<s>", "<pad>", "</s>", "<unk>"],
        post=_append("<s> $A </s>"),
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=2,
    )
    torch.manual_seed(0)
    BartForConditionalGeneration(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def write_generation_data(folder: Path, fmt: str, n_train: int = 24, seed: int = 0) -> dict:
    """JSONL splits where the output repeats the input's disease word ("cancer" → "cancer")."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", n_train), ("dev", 6), ("test", 6)):
        rows = []
        for _ in range(n):
            disease = rng.choice(["cancer", "diabetes", "tumor", "fever"])
            words = [rng.choice(WORDS[:12]) for _ in range(rng.randint(2, 6))]
            source = " ".join([*words, disease])
            rows.append(_row(fmt, source, f"the {disease}"))
        path = folder / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths[split] = path
    return paths


def _row(fmt: str, source: str, target: str) -> dict[str, Any]:
    if fmt == "seq2seq":
        return {"source": source, "target": target}
    if fmt == "prompt_completion":
        return {"prompt": source + " =>", "completion": " " + target}
    if fmt == "instruction":
        return {"instruction": "name the disease", "input": source, "output": target}
    return {
        "messages": [
            {"role": "user", "content": source},
            {"role": "assistant", "content": target},
        ]
    }


def learned_runs(tokenizer: Any, ids: list[int], mask: list[int]) -> list[str]:
    """The text of each run of consecutive learned tokens (loss mask 1), in order."""
    runs, current = [], []
    for token, learned in zip(ids, mask, strict=True):
        if learned:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs
