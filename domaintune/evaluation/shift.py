"""Domain-shift analysis: how far domain text is from what a base model knows, before training.

``analyse_shift`` compares domain text with general reference text on word types, tokenizer
coverage and base-model perplexity, describes the labelled task data, and turns the numbers into
a verdict (``low``/``moderate``/``high``) by the thresholds in ``THRESHOLDS``:

* tokenizer: unk rate > 0.5% / > 2% of tokens, or > 2% / > 10% of distinct characters giving unk
  alone (when they are at least 0.1% of character occurrences); share of words cut into
  several pieces > 1.5× / > 2.5× the reference's;
* perplexity: domain perplexity > 1.3× / > 2× the reference's (only for a model with a
  pretrained LM head: MiniLM's checkpoint has none, so its perplexity is skipped);
* vocabulary: domain words unseen in the reference are > 1.25× / > 1.5× as frequent as unseen
  words in held-out reference text (``compare_vocabulary``'s ``unseen_ratio``).

The first number of each pair makes the shift moderate, the second high. On the shared data
with WikiText as reference, ``unseen_ratio`` is 1.3 for CoNLL-2003 news, 1.4 for financial
news, 1.5 for PubMed abstracts and 1.8 for NCBI-disease sentences; 1.0 to 1.1 for in-domain
text (a domain's test file against its train file).

Statistics use at most
``max_docs`` texts per corpus (a seeded sample). ``analyse_files`` reads files and loads the
tokenizer; ``format_shift`` (in ``shift_format``) renders a report for the terminal.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domaintune.evaluation.shift_format import format_shift
from domaintune.evaluation.task_data import describe_task_data
from domaintune.evaluation.words import sample_texts, split_words

if TYPE_CHECKING:
    from domaintune.config.sections import DataConfig
    from domaintune.data.pipeline import RawSplits

__all__ = [
    "THRESHOLDS",
    "analyse_files",
    "analyse_shift",
    "compare_vocabulary",
    "format_shift",
    "measure_perplexity",
    "shift_verdict",
]

# (moderate, high) bounds of the verdict; see the module docstring.
THRESHOLDS: dict[str, tuple[float, float]] = {
    "unk_rate": (0.005, 0.02),
    "unk_char_rate": (0.02, 0.10),
    "fragmented_ratio": (1.5, 2.5),
    "perplexity_ratio": (1.3, 2.0),
    "unseen_ratio": (1.25, 1.5),
}
MIN_UNK_CHAR_OCCURRENCES = 0.001  # unk_char_rate counts only above this occurrence rate
MAX_DOCS = 5_000
MIN_HALF_WORDS = 1_000  # each reference half needs this many words for ``unseen_ratio``
TOP_WORDS = 20
MIN_TOP_COUNT = 5  # a word needs this many domain occurrences to be listed as over-represented


def _read_texts(path: str | Path, text_column: str) -> list[str]:
    """The file's texts, cleaned as training cleans them, without empty ones."""
    from domaintune.data.clean import clean_text
    from domaintune.data.readers import read_texts

    return [t for t in (clean_text(t) for t in read_texts(path, text_column)) if t]


def _coverage(words: Counter[str], known: Counter[str]) -> float:
    """Share of the word occurrences in ``words`` whose type ``known`` has."""
    return sum(c for w, c in words.items() if w in known) / max(sum(words.values()), 1)


def compare_vocabulary(
    domain: list[str], reference: list[str], top: int = TOP_WORDS
) -> dict[str, Any]:
    """Word-type overlap of domain and reference text, and the most domain-specific words.

    Coverage grows with the reference's size, so the verdict uses a size-free ratio: the
    first half of the reference (by document order) is the known vocabulary; the share of
    domain word occurrences it misses is divided by the share of the second half's occurrences
    it misses. 1.0 means the domain is as close to the reference as the reference to itself.

    Args:
        domain: Domain texts.
        reference: General reference texts.
        top: How many over-represented domain words to list.

    Returns:
        Type and occurrence counts, ``jaccard`` of the type sets, ``type_coverage`` (domain
        types seen in the reference), ``occurrence_coverage`` (domain word occurrences whose
        type the reference has), ``unseen_ratio`` (the size-free ratio above; None when a
        reference half has fewer than ``MIN_HALF_WORDS`` words) and ``over_represented``:
        domain words seen at least ``MIN_TOP_COUNT`` times, by add-one-smoothed log ratio of
        relative frequencies.

    """
    d = Counter(w for text in domain for w in split_words(text))
    halves = (reference[: len(reference) // 2], reference[len(reference) // 2 :])
    first, second = (Counter(w for text in half for w in split_words(text)) for half in halves)
    r = first + second
    n_d, n_r = sum(d.values()), sum(r.values())
    union = len(d.keys() | r.keys())
    shared = len(d.keys() & r.keys())
    self_missed = 1 - _coverage(second, first)

    def log_ratio(word: str) -> float:
        return math.log((d[word] + 1) / (n_d + union)) - math.log((r[word] + 1) / (n_r + union))

    frequent = [w for w, c in d.items() if c >= MIN_TOP_COUNT]
    ranked = sorted(frequent, key=lambda w: (-log_ratio(w), w))[:top]
    return {
        "domain_types": len(d),
        "reference_types": len(r),
        "domain_words": n_d,
        "reference_words": n_r,
        "jaccard": shared / max(union, 1),
        "type_coverage": shared / max(len(d), 1),
        "occurrence_coverage": _coverage(d, r),
        "unseen_ratio": (
            (1 - _coverage(d, first)) / max(self_missed, 0.01)  # floor: no division by zero
            if min(sum(first.values()), sum(second.values())) >= MIN_HALF_WORDS
            else None
        ),
        "over_represented": [
            {"word": w, "domain": d[w], "reference": r[w], "log_ratio": round(log_ratio(w), 3)}
            for w in ranked
        ],
    }


def _lm_head_missing(model: str) -> list[str]:
    """Checkpoint weights the model's LM head lacks (MiniLM ships no masked-LM head)."""
    import transformers

    from domaintune.config.sections import ModelConfig
    from domaintune.models.load import load_model, model_type, resolve_source
    from domaintune.tasks.language_modeling import objective_for

    source = resolve_source(ModelConfig(name=model))
    mlm = objective_for(model_type(source)) == "mlm"
    auto = transformers.AutoModelForMaskedLM if mlm else transformers.AutoModelForCausalLM
    _, info = load_model(source, auto, output_loading_info=True)
    return sorted(info.get("missing_keys", []))


def measure_perplexity(
    model: str, domain: list[str], reference: list[str] | None, max_tokens: int
) -> dict[str, Any]:
    """Base-model perplexity on domain (and reference) text, or why it was skipped.

    Args:
        model: Alias, folder, ``.gguf`` or hub id.
        domain: Domain texts.
        reference: Reference texts, or None.
        max_tokens: Score about this many tokens of each corpus.

    Returns:
        ``{"domain", "reference", "ratio", "objective"}`` (each corpus as ``text_perplexity``
        returns it), or ``{"skipped": reason}`` when the model has no pretrained LM head.

    """
    from domaintune.evaluation.perplexity import text_perplexity

    missing = _lm_head_missing(model)
    if missing:
        return {
            "skipped": f"{model} has no pretrained LM head ({len(missing)} weights missing, "
            f"e.g. {missing[0]}): its perplexity would measure a random head → pass a model "
            "with an LM head (e.g. --model smollm2) or a DAPT run's final/ folder"
        }
    out: dict[str, Any] = {"domain": text_perplexity(model, domain, max_tokens=max_tokens)}
    out["objective"] = out["domain"]["objective"]
    if reference:
        out["reference"] = text_perplexity(model, reference, max_tokens=max_tokens)
        out["ratio"] = out["domain"]["perplexity"] / out["reference"]["perplexity"]
    return out


def _grade(value: float, bounds: tuple[float, float]) -> int:
    moderate, high = bounds
    return 2 if value > high else 1 if value > moderate else 0


def shift_verdict(report: dict[str, Any]) -> dict[str, Any]:
    """Decide the shift level from a report's numbers by ``THRESHOLDS``.

    Args:
        report: What ``analyse_shift`` computed (``tokenizer``, ``vocabulary``, ``perplexity``,
            ``task_data``).

    Returns:
        ``{"level", "summary", "reasons", "advice"}``: reasons are the measurements that
        raised the level, advice covers lengths and labels.

    """
    reasons: list[tuple[int, str, str]] = []  # (grade, kind, text)
    tok = report["tokenizer"]["domain"]
    grades = (
        _grade(tok["unk_rate"], THRESHOLDS["unk_rate"]),
        # Distinct characters count only when they occur: rare symbols alone are no shift.
        _grade(tok["unk_char_rate"], THRESHOLDS["unk_char_rate"])
        if tok["unk_char_occurrence_rate"] >= MIN_UNK_CHAR_OCCURRENCES
        else 0,
    )
    if max(grades):
        reasons.append(
            (
                max(grades),
                "tokenizer",
                f"tokenizer: {tok['unk_rate']:.2%} of tokens are unknown, and "
                f"{tok['unk_char_rate']:.1%} of distinct characters "
                f"({tok['unk_chars']} of {tok['chars']}) give unk alone",
            )
        )
    ref = report["tokenizer"].get("reference")
    if ref:
        # Floor: a reference with almost no fragmented words would make any ratio huge.
        ratio = tok["fragmented_word_rate"] / max(ref["fragmented_word_rate"], 0.01)
        grade = _grade(ratio, THRESHOLDS["fragmented_ratio"])
        if grade:
            reasons.append(
                (
                    grade,
                    "tokenizer",
                    f"tokenizer: {tok['fragmented_word_rate']:.1%} of words are cut into "
                    f"several pieces vs {ref['fragmented_word_rate']:.1%} of reference words "
                    f"({ratio:.2f}×; {tok['pieces_per_word']:.2f} vs "
                    f"{ref['pieces_per_word']:.2f} pieces per word)",
                )
            )
    ppl = report.get("perplexity") or {}
    if "ratio" in ppl:
        grade = _grade(ppl["ratio"], THRESHOLDS["perplexity_ratio"])
        if grade:
            reasons.append(
                (
                    grade,
                    "perplexity",
                    f"perplexity: {ppl['domain']['perplexity']:.1f} on domain text vs "
                    f"{ppl['reference']['perplexity']:.1f} on the reference "
                    f"({ppl['ratio']:.2f}×)",
                )
            )
    vocab = report.get("vocabulary")
    if vocab and vocab["unseen_ratio"] is not None:
        grade = _grade(vocab["unseen_ratio"], THRESHOLDS["unseen_ratio"])
        if grade:
            reasons.append(
                (
                    grade,
                    "vocabulary",
                    f"vocabulary: domain words unseen in the reference are "
                    f"{vocab['unseen_ratio']:.2f}× as frequent as in held-out reference text "
                    f"({vocab['occurrence_coverage']:.1%} of domain word occurrences seen)",
                )
            )
    level = max((g for g, _, _ in reasons), default=0)
    kinds = {k for g, k, _ in reasons if g == level}
    if level == 2:
        summary = "High domain shift: " + (
            "consider vocabulary expansion (model.expand_vocab) and DAPT "
            "(task language_modeling on domain text) before fine-tuning."
            if "tokenizer" in kinds
            else "consider DAPT (task language_modeling on domain text) before fine-tuning."
        )
    elif level == 1:
        summary = (
            "Moderate domain shift: DAPT on domain text may help; fine-tune directly first "
            "as the baseline."
        )
    else:
        summary = "Low domain shift: fine-tune directly; DAPT is unlikely to pay off."
    return {
        "level": ("low", "moderate", "high")[level],
        "summary": summary,
        "reasons": [text for _, _, text in sorted(reasons, key=lambda r: -r[0])],
        "advice": (report.get("task_data") or {}).get("advice", []),
    }


def analyse_shift(
    domain_texts: list[str],
    tokenizer: Any,
    *,
    reference_texts: list[str] | None = None,
    model: str | None = None,
    task_examples: list[dict[str, Any]] | None = None,
    max_ppl_tokens: int = 20_000,
    max_docs: int = MAX_DOCS,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure how far domain text is from a model's tokenizer, its training and the reference.

    Args:
        domain_texts: Domain documents.
        tokenizer: The model's fast tokenizer.
        reference_texts: General text to compare with (e.g. WikiText), or None.
        model: Alias, folder, ``.gguf`` or hub id for perplexity; None skips perplexity.
        task_examples: Labelled examples (``text``/``label`` or ``tokens``/``tags``), or None.
        max_ppl_tokens: Score about this many tokens of each corpus for perplexity.
        max_docs: Use at most this many texts (and task examples) for the statistics.
        seed: Seed of the sample.

    Returns:
        A JSON-serialisable report: ``corpus``, ``vocabulary`` (None without a reference),
        ``tokenizer``, ``perplexity`` (None without a model), ``task_data`` (None without
        examples), ``verdict`` and ``seconds``.

    """
    from domaintune.models.vocab import tokenization_stats

    start = time.perf_counter()
    domain = sample_texts(domain_texts, max_docs, seed)
    reference = sample_texts(reference_texts, max_docs, seed) if reference_texts else None
    report: dict[str, Any] = {
        "corpus": {
            "domain_documents": len(domain_texts),
            "domain_sampled": len(domain),
            "reference_documents": len(reference_texts) if reference_texts else 0,
            "reference_sampled": len(reference) if reference else 0,
        },
        "vocabulary": compare_vocabulary(domain, reference) if reference else None,
        "tokenizer": {
            "domain": tokenization_stats(tokenizer, domain),
            "reference": tokenization_stats(tokenizer, reference) if reference else None,
        },
        "perplexity": (
            measure_perplexity(model, domain, reference, max_ppl_tokens) if model else None
        ),
        "task_data": (
            describe_task_data(task_examples, tokenizer, max_docs, seed) if task_examples else None
        ),
    }
    report["verdict"] = shift_verdict(report)
    report["thresholds"] = {k: list(v) for k, v in THRESHOLDS.items()}
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def analyse_files(
    domain: str | Path,
    reference: str | Path | None = None,
    model: str = "minilm",
    task_data: str | Path | None = None,
    *,
    text_column: str = "text",
    label_column: str = "label",
    perplexity: bool = True,
    max_ppl_tokens: int = 20_000,
    max_docs: int = MAX_DOCS,
    seed: int = 0,
) -> dict[str, Any]:
    """Read the files, load the model's tokenizer and run ``analyse_shift``.

    Texts are cleaned as training cleans them.

    Args:
        domain: Domain text file (.txt one document a line, .jsonl, .csv, .conll).
        reference: General reference text file, or None.
        model: Alias, folder, ``.gguf`` or hub id.
        task_data: Labelled task file (.jsonl/.csv with labels, or .conll), or None.
        text_column: Text column of .jsonl/.csv files.
        label_column: Label column of the task file.
        perplexity: Measure the model's perplexity (slow for big models).
        max_ppl_tokens: Score about this many tokens of each corpus for perplexity.
        max_docs: Use at most this many texts for the statistics.
        seed: Seed of the sample.

    Returns:
        The report of ``analyse_shift`` with ``files`` and ``model`` added.

    """
    from domaintune.config.sections import ModelConfig
    from domaintune.evaluation.task_data import read_task_examples
    from domaintune.models.load import load_tokenizer, quiet_libraries, resolve_source

    quiet_libraries()
    domain_texts = _read_texts(domain, text_column)
    reference_texts = _read_texts(reference, text_column) if reference else None
    examples = read_task_examples(task_data, text_column, label_column) if task_data else None
    tokenizer = load_tokenizer(resolve_source(ModelConfig(name=model)))
    report = analyse_shift(
        domain_texts,
        tokenizer,
        reference_texts=reference_texts,
        model=model if perplexity else None,
        task_examples=examples,
        max_ppl_tokens=max_ppl_tokens,
        max_docs=max_docs,
        seed=seed,
    )
    files = {"domain": str(domain), "reference": reference, "task_data": task_data}
    return {
        "files": {k: str(v) if v else None for k, v in files.items()},
        "model": model,
        **report,
    }


def domain_shift(
    data: DataConfig, task: Any, train_texts: list[str], raw: RawSplits, tokenizer: Any
) -> dict[str, Any]:
    """The domain-shift report of the training text (``domaintune analyse`` without perplexity).

    Compared with ``data.reference_text`` when given; labelled task data is described too.
    """
    from domaintune.data.pipeline import example_texts
    from domaintune.data.readers import read_split

    reference = None
    if data.reference_text is not None:
        examples = read_split(data.reference_text, data.model_copy(update={"format": "auto"}), "lm")
        reference = example_texts(examples)
    return analyse_shift(
        train_texts,
        tokenizer,
        reference_texts=reference,
        # several tasks' examples (multi-task) are not one labelled data set to describe
        task_examples=(
            raw.splits["train"]
            if task.kind in ("text", "tokens") and not getattr(task, "mixed_examples", False)
            else None
        ),
    )
