"""Domain vocabulary expansion: find what a tokenizer covers badly, add it, initialise it.

``tokenization_stats`` measures coverage, ``find_domain_tokens`` lists characters and words to
add (in the tokenizer's normalised form), ``add_domain_tokens`` adds them (real WordPiece
vocabulary entries for BERT-family tokenizers, added tokens otherwise) and
``init_new_embeddings`` resizes the model and starts each new row from the old pieces.
``expand_model_folder`` does all of it for a model folder and writes the result.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domaintune.config.sections import ModelConfig, VocabExpansionConfig
from domaintune.errors import RunError

# Scripts written without spaces between words: their "words" are phrases, so the unknown
# characters are added, never the phrase (BERT's CJK ideograph ranges, plus kana).
_NO_SPACE_RANGES = (
    (0x3040, 0x30FF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2CEAF),
    (0x2F800, 0x2FA1F),
)


def _has_cjk(text: str) -> bool:
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in _NO_SPACE_RANGES)


def _backend(tokenizer: Any) -> Any:
    """A copy of the Rust tokenizer without the truncation/padding its tokenizer.json may set."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def _normalize(backend: Any, text: str) -> str:
    return (backend.normalizer.normalize_str(text) if backend.normalizer else text).strip()


@dataclass
class _Scan:
    """Token, word and character counts of a corpus under one tokenizer."""

    tokens: int = 0
    unk_tokens: int = 0
    # normalised word -> [occurrences, pieces summed over occurrences, occurrences with unk]
    words: dict[str, list[int]] = field(default_factory=dict)
    chars: Counter[str] = field(default_factory=Counter)  # raw non-space character -> count
    unk_chars: set[str] = field(default_factory=set)  # raw characters that alone give unk
    char_forms: dict[str, str] = field(default_factory=dict)  # raw character -> normalised


def _scan(tokenizer: Any, texts: list[str]) -> _Scan:
    backend = _backend(tokenizer)
    unk_id = tokenizer.unk_token_id
    scan = _Scan()
    spans: dict[str, list[int]] = {}  # raw word text -> [count, pieces, unk count]
    for text, enc in zip(texts, backend.encode_batch(texts, add_special_tokens=False), strict=True):
        ids = enc.ids
        scan.tokens += len(ids)
        # Group consecutive tokens by word id; offsets give each word's text.
        prev: int | None = -1
        start = end = pieces = unk = 0
        for tid, word, (s, e) in zip(ids, enc.word_ids, enc.offsets, strict=True):
            if word != prev:
                if pieces:
                    _count(spans, text[start:end], pieces, unk)
                prev, start, pieces, unk = word, s, 0, 0
            pieces += 1
            end = e
            if tid == unk_id:
                unk = 1
                scan.unk_tokens += 1
        if pieces:
            _count(spans, text[start:end], pieces, unk)
    # Normalise each distinct span once, so words are in the form the model will see.
    for span, (count, pieces, unk) in spans.items():
        _count(scan.words, _normalize(backend, span), pieces, unk, count)
    for text in texts:
        scan.chars.update(text)
    for ch in [ch for ch in scan.chars if ch.isspace()]:
        del scan.chars[ch]
    distinct = list(scan.chars)
    alone = backend.encode_batch(distinct, add_special_tokens=False)
    for ch, enc in zip(distinct, alone, strict=True):
        scan.char_forms[ch] = _normalize(backend, ch)
        if unk_id is not None and unk_id in enc.ids:
            scan.unk_chars.add(ch)
    return scan


def _count(table: dict[str, list[int]], key: str, pieces: int, unk: int, n: int = 1) -> None:
    entry = table.setdefault(key, [0, 0, 0])
    entry[0] += n
    entry[1] += pieces
    entry[2] += unk


def tokenization_stats(tokenizer: Any, texts: list[str]) -> dict[str, float | int]:
    """Measure how well a fast tokenizer covers a corpus.

    Args:
        tokenizer: A transformers fast tokenizer.
        texts: The corpus, one document per string.

    Returns:
        ``unk_rate`` (fraction of tokens that are the unk token), ``unk_char_rate`` (fraction of
        distinct non-space characters that give unk when tokenised alone),
        ``unk_char_occurrence_rate`` (the same, weighted by occurrences), ``pieces_per_word``
        (mean pieces per pre-tokenizer word; under BERT each CJK character is a word),
        ``fragmented_word_rate`` (word occurrences cut into two pieces or more), ``tokens``,
        ``words``, ``chars`` (distinct) and ``unk_chars`` (distinct characters giving unk).

    """
    scan = _scan(tokenizer, texts)
    words = sum(entry[0] for entry in scan.words.values())
    pieces = sum(entry[1] for entry in scan.words.values())
    fragmented = sum(e[0] for e in scan.words.values() if e[1] >= 2 * e[0])
    occurrences = sum(scan.chars.values())
    return {
        "unk_rate": scan.unk_tokens / max(scan.tokens, 1),
        "unk_char_rate": len(scan.unk_chars) / max(len(scan.chars), 1),
        "unk_char_occurrence_rate": sum(scan.chars[c] for c in scan.unk_chars)
        / max(occurrences, 1),
        "pieces_per_word": pieces / max(words, 1),
        "fragmented_word_rate": fragmented / max(words, 1),
        "tokens": scan.tokens,
        "words": words,
        "chars": len(scan.chars),
        "unk_chars": len(scan.unk_chars),
    }


def unknown_characters(tokenizer: Any, texts: list[str], min_count: int = 1) -> dict[str, int]:
    """Characters of ``texts`` (seen at least ``min_count`` times) that alone give unk."""
    scan = _scan(tokenizer, texts)
    found = {ch: scan.chars[ch] for ch in scan.unk_chars if scan.chars[ch] >= min_count}
    return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))


def find_domain_tokens(
    tokenizer: Any,
    texts: list[str],
    min_count: int = 2,
    max_new: int | None = None,
    min_pieces: int = 3,
) -> list[str]:
    """List the characters and words worth adding to the tokenizer, best first.

    First what fixes unk (by count): characters that give unk alone, and words with unk pieces
    (for CJK only their unknown characters, otherwise the whole word). Then words of letters
    that are cut into at least ``min_pieces`` pieces, ranked by count × (pieces − 1). Strings are
    in the tokenizer's normalised form (lowercased and accent-stripped for uncased BERT).

    Args:
        tokenizer: A transformers fast tokenizer.
        texts: The domain corpus (usually the training split).
        min_count: Only strings seen at least this often.
        max_new: At most this many strings; ``None`` keeps all.
        min_pieces: Fragmentation threshold for known-character words.

    Returns:
        Candidate strings, deterministic (ties broken by the string).

    """
    scan = _scan(tokenizer, texts)
    unk: Counter[str] = Counter()
    for ch in scan.unk_chars:
        form = scan.char_forms[ch]
        if form and not any(c.isspace() for c in form):
            unk[form] += scan.chars[ch]
    for word, (count, _, unk_count) in scan.words.items():
        if unk_count and count >= min_count and word and not _has_cjk(word):
            unk[word] = max(unk[word], count)
    fixes = sorted((s for s, n in unk.items() if n >= min_count), key=lambda s: (-unk[s], s))
    taken = set(fixes)
    scored = [
        (count * (pieces / count - 1), word)
        for word, (count, pieces, unk_count) in scan.words.items()
        if not unk_count
        and count >= min_count
        and pieces >= min_pieces * count
        and word.isalpha()
        and not _has_cjk(word)
        and word not in taken
    ]
    fragmented = [word for _, word in sorted(scored, key=lambda sw: (-sw[0], sw[1]))]
    found = fixes + fragmented
    return found if max_new is None else found[:max_new]


def add_domain_tokens(tokenizer: Any, tokens: list[str]) -> tuple[Any, list[str]]:
    """Return a new tokenizer that knows ``tokens``, and the strings actually added.

    WordPiece (BERT family): each string becomes a real vocabulary entry (new ids at the end),
    so it takes part in longest-match tokenisation (``hypertensions`` → ``hypertension ##s``); a
    new single character that can continue a word also gets its ``##`` form. Strings the
    pre-tokenizer would split could never match and are skipped. Any other model (BPE, byte-level
    BPE, Unigram, WordLevel): plain added tokens. Strings already known are skipped. The input
    tokenizer is not modified.

    Args:
        tokenizer: A transformers fast tokenizer.
        tokens: Strings to add, e.g. from :func:`find_domain_tokens`.

    Returns:
        The new tokenizer (same class, same special tokens) and the added strings in id order.

    """
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    known = set(tokenizer.get_vocab())
    added: list[str] = []
    if data["model"]["type"] != "WordPiece":
        from transformers import AddedToken

        new = copy.deepcopy(tokenizer)
        fresh = [t for t in dict.fromkeys(tokens) if t and t not in known]
        # single_word: added tokens are matched by string search before the model, so without it
        # "hypertension" would also fire inside "hypertensions". CJK has no spaces: never single.
        new.add_tokens([AddedToken(t, single_word=not _has_cjk(t)) for t in fresh])
        ids = new.get_vocab()
        return new, sorted((t for t in fresh if t in ids), key=ids.__getitem__)

    from tokenizers import Tokenizer

    # By hand: add_tokens only makes added tokens (split off before WordPiece, so never part of
    # longest-match), and tokenizers has no call that extends a WordPiece vocabulary.
    model = data["model"]
    vocab: dict[str, int] = model["vocab"]
    prefix = model.get("continuing_subword_prefix") or "##"
    longest = model.get("max_input_chars_per_word") or 100
    backend = _backend(tokenizer)
    pre = backend.pre_tokenizer
    next_id = max(len(tokenizer), max(vocab.values(), default=-1) + 1)
    for raw in tokens:
        text = _normalize(backend, raw)
        words = pre.pre_tokenize_str(text) if pre else [(text, (0, len(text)))]
        if not text or len(text) > longest or [w for w, _ in words] != [text]:
            continue  # empty, too long for WordPiece, or split into several words
        forms = [text]
        joined = _normalize(backend, "a" + text)  # does the character ever continue a word?
        if len(text) == 1 and (not pre or len(pre.pre_tokenize_str(joined)) == 1):
            forms.append(prefix + text)
        for form in forms:
            if form not in known:
                vocab[form] = next_id
                known.add(form)
                added.append(form)
                next_id += 1
    new_backend = Tokenizer.from_str(json.dumps(data))
    kwargs = {
        k: v
        for k, v in tokenizer.init_kwargs.items()
        if k not in ("vocab", "vocab_file", "merges", "tokenizer_file", "name_or_path")
        and k != "added_tokens_decoder"
    }
    new = type(tokenizer)(tokenizer_object=new_backend, **kwargs)
    if getattr(tokenizer, "chat_template", None):
        new.chat_template = tokenizer.chat_template
    return new, added


def init_new_embeddings(
    model: Any, old_tokenizer: Any, new_tokenizer: Any, added: list[str]
) -> dict[str, int]:
    """Resize the model's vocabulary and initialise the rows of the ``added`` strings.

    A new input row is the mean of the old rows of the pieces the old tokenizer cuts the string
    into (unk and special pieces excluded; a WordPiece ``##x`` uses the pieces of ``x``); with
    no such piece, a normal draw (global torch RNG) with the matrix's std. Untied output
    embeddings (a decoder's ``lm_head``) get the same treatment from their own old rows; an
    output bias (BERT's MLM bias) gets the pieces' mean bias, or the mean bias.

    Args:
        model: A transformers model with any head (masked LM, causal LM, classification...).
        old_tokenizer: The tokenizer the model was trained with.
        new_tokenizer: The tokenizer from :func:`add_domain_tokens`.
        added: The strings that tokenizer added.

    Returns:
        ``{"added": n, "from_pieces": n1, "random": n2}``.

    """
    import torch

    old_rows = model.get_input_embeddings().weight.shape[0]
    new_ids = [new_tokenizer.convert_tokens_to_ids(token) for token in added]
    # Some checkpoints pad the matrix beyond the tokenizer, some vocabularies have holes.
    rows = max([len(new_tokenizer), old_rows, *(i + 1 for i in new_ids)])
    model.resize_token_embeddings(rows, mean_resizing=False)
    emb = model.get_input_embeddings().weight  # (V, H)
    out = model.get_output_embeddings()
    untied = out is not None and out.weight is not emb and out.weight.shape[0] == emb.shape[0]
    bias = getattr(out, "bias", None) if out is not None else None
    piece_model = new_tokenizer.backend_tokenizer.model
    prefix = getattr(piece_model, "continuing_subword_prefix", None)
    if type(piece_model).__name__ != "WordPiece":
        prefix = None
    sources = [s[len(prefix) :] if prefix and s.startswith(prefix) else s for s in added]
    skip = {old_tokenizer.unk_token_id, *old_tokenizer.all_special_ids}
    encodings = _backend(old_tokenizer).encode_batch(sources, add_special_tokens=False)
    report = {"added": len(added), "from_pieces": 0, "random": 0}
    with torch.no_grad():
        std = emb[:old_rows].std().item()
        out_std = out.weight[:old_rows].std().item() if untied else 0.0
        for new_id, enc in zip(new_ids, encodings, strict=True):
            pieces = [i for i in enc.ids if i not in skip and i < old_rows]
            if pieces:
                report["from_pieces"] += 1
                emb[new_id] = emb[pieces].mean(0)
                if untied:
                    out.weight[new_id] = out.weight[pieces].mean(0)
            else:
                report["random"] += 1
                emb[new_id] = torch.randn(emb.shape[1], device=emb.device) * std
                if untied:
                    out.weight[new_id] = torch.randn(emb.shape[1], device=emb.device) * out_std
            if bias is not None and bias.shape[0] == emb.shape[0]:
                bias[new_id] = bias[pieces].mean() if pieces else bias[:old_rows].mean()
    return report


def expand_model_folder(
    model: str, texts: list[str], output: Path, cfg: VocabExpansionConfig, overwrite: bool = False
) -> dict[str, Any]:
    """Expand a model's vocabulary from ``texts`` and save model and tokenizer to ``output``.

    Encoders (model types with a masked-LM head) load as masked LM, others as causal LM.
    ``output`` also gets ``vocab-report.json``: stats before/after, the added strings, the
    initialisation report and characters still unknown.

    Args:
        model: Built-in alias, model folder, ``.gguf`` file or hub id.
        texts: The domain corpus.
        output: Folder to write; must not exist or be empty unless ``overwrite``.
        cfg: Thresholds (``min_count``, ``max_new``, ``min_pieces``).
        overwrite: Replace an existing model folder at ``output``.

    Returns:
        The report written to ``vocab-report.json``.

    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    from domaintune.models.load import load_model, load_tokenizer, resolve_source

    started = time.perf_counter()
    source = resolve_source(ModelConfig(name=model))
    _check_output(output, source.path if source.is_local else None, overwrite)
    config = AutoConfig.from_pretrained(source.path, revision=source.revision)
    masked = config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    net = load_model(source, AutoModelForMaskedLM if masked else AutoModelForCausalLM)
    tokenizer = load_tokenizer(source)
    before = tokenization_stats(tokenizer, texts)
    found = find_domain_tokens(tokenizer, texts, cfg.min_count, cfg.max_new, cfg.min_pieces)
    new_tokenizer, added = add_domain_tokens(tokenizer, found)
    init = init_new_embeddings(net, tokenizer, new_tokenizer, added)
    report: dict[str, Any] = {
        "model": model,
        "texts": len(texts),
        "config": cfg.model_dump(),
        "before": before,
        "after": tokenization_stats(new_tokenizer, texts),
        "candidates": len(found),
        "added": added,
        "init": init,
        "unknown_chars_left": unknown_characters(new_tokenizer, texts, cfg.min_count),
    }
    # Write beside the target and rename, so a failure never leaves a half-written folder.
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        net.save_pretrained(str(tmp))
        new_tokenizer.save_pretrained(str(tmp))
        report["seconds"] = round(time.perf_counter() - started, 2)
        (tmp / "vocab-report.json").write_text(
            json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        if output.exists():
            shutil.rmtree(output)
        tmp.replace(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _check_output(output: Path, model_folder: str | None, overwrite: bool) -> None:
    """Refuse to write over the model itself, or over a non-empty folder without ``overwrite``."""
    if model_folder is not None and output.resolve() == Path(model_folder).resolve():
        raise RunError(f"--output: {output}: is the input model folder → choose another folder")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        if not overwrite:
            raise RunError(
                f"--output: {output}: exists and is not empty → pass --overwrite or choose "
                "another folder"
            )
        if not (output / "config.json").is_file():
            raise RunError(
                f"--output: {output}: not a model folder (no config.json), never replaced → "
                "choose another folder"
            )


def expand_tokenizer(
    tokenizer: Any, texts: list[str], cfg: VocabExpansionConfig
) -> tuple[Any, list[str], dict[str, Any]]:
    """Add the training text's badly split words and [UNK] characters to the tokenizer.

    Returns:
        The expanded tokenizer, the added tokens and a report (counts, examples, tokenisation
        statistics before and after).

    """
    before = tokenization_stats(tokenizer, texts)
    candidates = find_domain_tokens(
        tokenizer, texts, min_count=cfg.min_count, max_new=cfg.max_new, min_pieces=cfg.min_pieces
    )
    expanded, added = add_domain_tokens(tokenizer, candidates)
    after = tokenization_stats(expanded, texts)
    report = {"added": len(added), "examples": added[:30], "before": before, "after": after}
    return expanded, added, report
