"""Language modelling on domain text: masked LM (encoders) and causal LM (decoders).

Documents are packed into fixed blocks (tokenise, concatenate with separators, cut; no
padding). The vocabulary projection is computed only where there is a target: the masked
positions for MLM (about 15% of tokens) and every position but a block's last for CLM, through
:class:`~domaintune.models.lm.TargetPositionsLM`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from domaintune.config.sections import LanguageModelingTaskConfig
from domaintune.data.collate import pad_inputs
from domaintune.data.encode import Encoded
from domaintune.data.pipeline import RawSplits
from domaintune.data.readers import Example, Kind
from domaintune.errors import RunError
from domaintune.tasks.knowledge_masking import choose_units, mention_units

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def objective_for(model_type: str) -> str:
    """``mlm`` for model types with a masked-LM class in transformers, else ``clm``."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return "mlm" if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "clm"


class LanguageModelingTask:
    """Continued pretraining (DAPT/TAPT) with packing and target-only vocabulary projection."""

    kind: Kind = "lm"
    default_metric = "perplexity"

    def __init__(
        self, cfg: LanguageModelingTaskConfig, state: dict[str, Any] | None = None
    ) -> None:
        """Create the task; ``state`` (from a saved run) fixes the resolved objective."""
        self.cfg = cfg
        saved = (state or {}).get("objective")
        self.objective: str = saved or ("" if cfg.objective == "auto" else cfg.objective)
        self._tables: tuple[int, int, np.ndarray] | None = None

    # ---------------------------------------------------------------------------- labels
    def fit_labels(self, raw: RawSplits) -> None:
        """Language modelling has no labels: token examples (TAPT on CoNLL) become text."""
        for examples in raw.splits.values():
            for example in examples:
                if "tokens" in example and "text" not in example:
                    example["text"] = " ".join(example.pop("tokens"))
                    example.pop("tags", None)

    def state(self) -> dict[str, Any]:
        """The resolved objective and the masking options that change encoding."""
        state = {"objective": self.objective, "whole_word_masking": self.cfg.whole_word_masking}
        if self.cfg.knowledge_masking:
            state["knowledge_masking"] = True
        return state

    # ----------------------------------------------------------------------------- model
    def auto_class(self) -> Any:
        """``AutoModelForMaskedLM`` or ``AutoModelForCausalLM``."""
        import transformers

        if self.objective == "mlm":
            return transformers.AutoModelForMaskedLM
        return transformers.AutoModelForCausalLM

    def model_kwargs(self) -> dict[str, Any]:
        """No extra arguments: the LM head comes with the model class."""
        return {}

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the loop trains and evaluates: projects only target positions."""
        from domaintune.models.lm import TargetPositionsLM

        return TargetPositionsLM(model, self.objective)

    # -------------------------------------------------------------------------- encoding
    def encode(self, examples: list[Example], tokenizer: Any, max_length: int) -> Encoded:
        """Tokenise documents, join them with separators and cut them into blocks.

        MLM documents keep the tokenizer's own specials (``[CLS] doc [SEP]``); CLM documents
        end with the EOS token. The last partial block is dropped when there is a full one.
        """
        texts = [e["text"] for e in examples]
        if not texts:
            return Encoded({"input_ids": []})
        mlm = self.objective == "mlm"
        knowledge = mlm and self.cfg.knowledge_masking  # implies whole words
        wwm = mlm and (self.cfg.whole_word_masking or knowledge)
        enc = tokenizer(
            texts,
            add_special_tokens=mlm,
            return_attention_mask=False,
            return_offsets_mapping=wwm,
            verbose=False,
        )
        eos = tokenizer.eos_token_id
        docs: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        entity: list[np.ndarray] = []
        for i, ids in enumerate(enc["input_ids"]):
            if not mlm and eos is not None and (not ids or ids[-1] != eos):
                ids = [*ids, eos]
            docs.append(np.asarray(ids, dtype=np.int32))
            if wwm:
                offsets = enc["offset_mapping"][i]
                start = _word_starts(texts[i], enc.word_ids(i), offsets)
                if knowledge:
                    start, flags = mention_units(start, offsets, examples[i].get("mentions", []))
                    entity.append(flags)
                starts.append(start)
        ids_all = np.concatenate(docs)
        features = {"input_ids": _blocks(ids_all, max_length)}
        if wwm:
            features["word_start"] = _blocks(np.concatenate(starts), max_length)
        if knowledge:
            features["entity"] = _blocks(np.concatenate(entity), max_length)
        return Encoded(features)

    def bind(self, model_type: str, tokenizer: Any) -> None:
        """Resolve ``objective: auto`` from the model type; keep the ids masking needs."""
        if not self.objective:
            self.objective = objective_for(model_type)
        specials = np.asarray(sorted(set(tokenizer.all_special_ids)), dtype=np.int64)
        mask = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else -1
        if self.cfg.knowledge_masking and self.objective != "mlm":
            raise RunError(
                f"task.knowledge_masking: true needs objective mlm, not {self.objective!r} → "
                "use an encoder with objective mlm, or set knowledge_masking: false"
            )
        if self.objective == "mlm" and mask < 0:
            raise RunError(
                "task.objective: 'mlm': the tokenizer has no mask token → use objective "
                "clm (a decoder) or an encoder with a [MASK] token"
            )
        self._tables = (int(mask), len(tokenizer), specials)

    def collate(
        self, features: dict[str, list[np.ndarray]], pad_token_id: int, training: bool = False
    ) -> dict[str, torch.Tensor]:
        """Pad blocks; choose target positions (masked tokens for MLM, next tokens for CLM).

        Training masks are drawn from torch's global RNG (saved with checkpoints, so a resumed
        run draws the same); evaluation masks are a function of each block's content, so the
        same text is always scored at the same positions.
        """
        batch = pad_inputs(features, pad_token_id)
        batch.pop("token_type_ids", None)
        ids, attention = batch["input_ids"], batch["attention_mask"]  # (B, T)
        if bool(attention.all()):
            del batch["attention_mask"]  # packed blocks: no padding, models take the fast path
        width = ids.shape[1]
        if self.objective == "clm":
            valid = attention.clone()
            valid[:, -1] = 0
            valid[:, :-1] &= attention[:, 1:]
            positions = valid.reshape(-1).nonzero().squeeze(1)  # (N,)
            batch["target_positions"] = positions
            batch["labels"] = ids.reshape(-1)[positions + 1]  # next token, same block
            return batch
        assert self._tables is not None, "bind() must run before collate()"
        mask_id, vocab, specials = self._tables
        candidate = attention.bool() & ~torch.isin(ids, torch.from_numpy(specials))  # (B, T)
        if training:
            draws = torch.rand(ids.shape)
        else:
            draws = torch.stack([_content_draws(row, width) for row in ids])
        if "word_start" in features:
            starts = torch.from_numpy(_pad_starts(features["word_start"], width))
            word = torch.cumsum(starts, dim=1) - 1  # (B, T) word index within the block
            draws = torch.gather(draws, 1, word.clamp(min=0))  # all pieces share their draw
        if "entity" in features:  # knowledge masking: linked mentions first, then words
            entity = torch.from_numpy(_pad_starts(features["entity"], width, fill=0))
            chosen = choose_units(candidate, word, draws, entity, self.cfg.mask_probability)
        else:
            chosen = candidate & (draws < self.cfg.mask_probability)  # (B, T)
        positions = chosen.reshape(-1).nonzero().squeeze(1)  # (N,)
        labels = ids.reshape(-1)[positions].clone()
        flat = ids.reshape(-1).clone()
        if training:  # BERT's 80/10/10: [MASK], a random token, or the token itself
            kind = torch.rand(positions.shape)
            flat[positions[kind < 0.8]] = mask_id
            rand_pos = positions[(kind >= 0.8) & (kind < 0.9)]
            flat[rand_pos] = torch.randint(vocab, rand_pos.shape)
        else:
            flat[positions] = mask_id
        batch["input_ids"] = flat.view_as(ids)
        batch["target_positions"] = positions
        batch["labels"] = labels
        return batch

    # ------------------------------------------------------------------------------ loss
    def loss(
        self, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy over the target positions, and their count."""
        return summed_cross_entropy(logits, batch["labels"])

    def outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per block: ``[summed cross-entropy, number of targets]``."""
        positions = batch["target_positions"]
        return row_cross_entropy(logits, batch["labels"], positions, batch["input_ids"])

    def metrics(
        self,
        outputs: list[np.ndarray],
        examples: list[Example],
        tune: bool = False,
        encoded: Encoded | None = None,
    ) -> dict[str, Any]:
        """Perplexity (``exp`` of the mean target cross-entropy), the loss and the target count."""
        return perplexity_metrics(outputs)

    def format_predictions(
        self, outputs: list[np.ndarray], examples: list[Example], encoded: Encoded, tokenizer: Any
    ) -> list[dict[str, Any]]:
        """Language-model runs make no predictions."""
        raise RunError(
            "predict: a language_modeling run has no labels to predict → use 'domaintune "
            "evaluate' for perplexity, or fine-tune a task from it (model.init_from)"
        )


def summed_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of target-position logits (N, V) against labels (N,), and N."""
    total = F.cross_entropy(logits.float(), labels, reduction="sum")
    return total, torch.tensor(float(labels.numel()), device=logits.device)


def row_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor, grid: torch.Tensor
) -> list[np.ndarray]:
    """Per row of ``grid`` (B, T): ``[summed cross-entropy, number of targets]``.

    ``logits`` (N, V) and ``labels`` (N,) are the target positions' scores and tokens;
    ``positions`` (N,) are their flat indices into ``grid``.
    """
    losses = F.cross_entropy(logits.detach().float(), labels, reduction="none")  # (N,)
    row = torch.div(positions, grid.shape[1], rounding_mode="floor")  # (N,)
    sums = torch.zeros(grid.shape[0], dtype=torch.float64, device=losses.device)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, row, losses.double())
    counts.index_add_(0, row, torch.ones_like(losses, dtype=torch.float64))
    return list(torch.stack([sums, counts], dim=1).cpu().numpy())


def perplexity_metrics(outputs: list[np.ndarray]) -> dict[str, Any]:
    """Perplexity, mean loss and target count from per-block ``[sum, count]`` pairs."""
    pairs = np.asarray(outputs, dtype=np.float64).reshape(-1, 2)
    total, count = float(pairs[:, 0].sum()), float(pairs[:, 1].sum())
    loss = total / count if count else float("nan")
    return {
        "perplexity": float(np.exp(min(loss, 700.0))) if count else float("nan"),
        "loss": loss,
        "targets": int(count),
    }


def _blocks(ids: np.ndarray, size: int) -> list[np.ndarray]:
    """Cut a long array into ``size``-long blocks; keep a partial one only when it is all."""
    full = len(ids) // size
    if full == 0:
        return [ids] if len(ids) else []
    return [ids[i * size : (i + 1) * size] for i in range(full)]


def _word_starts(text: str, word_ids: list[int | None], offsets: list[tuple[int, int]]) -> Any:
    """1 where a token begins a word: tokenizer words, or jieba words for Chinese text."""
    n = len(word_ids)
    out = np.ones(n, dtype=np.int8)
    if _CJK.search(text):
        import jieba

        jieba.setLogLevel(60)
        owner = np.full(len(text) + 1, -1, dtype=np.int64)
        pos = 0
        for w, piece in enumerate(jieba.cut(text)):
            owner[pos : pos + len(piece)] = w
            pos += len(piece)
        keys = [
            int(owner[s]) if e > s and word_ids[i] is not None else None
            for i, (s, e) in enumerate(offsets)
        ]
    else:
        keys = list(word_ids)  # type: ignore[arg-type]
    for i in range(1, n):
        if keys[i] is not None and keys[i] == keys[i - 1]:
            out[i] = 0
    return out


def _pad_starts(starts: list[np.ndarray], width: int, fill: int = 1) -> np.ndarray:
    out = np.full((len(starts), width), fill, dtype=np.int64)
    for row, s in enumerate(starts):
        out[row, : len(s)] = s
    return out


def _content_draws(row: torch.Tensor, width: int) -> torch.Tensor:
    """Uniform draws seeded by a block's own token ids (deterministic evaluation masks)."""
    digest = hashlib.blake2b(row.numpy().astype(np.int64).tobytes(), digest_size=8).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
    return torch.rand(width, generator=generator)
