"""Render a domain-shift report (``analyse_shift``) as aligned plain text for the terminal."""

from __future__ import annotations

from typing import Any


def _row(label: str, *values: str) -> str:
    return f"  {label:<34}" + "".join(f"{v:>14}" for v in values)


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _tokenizer_lines(report: dict[str, Any]) -> list[str]:
    tok = report["tokenizer"]
    cols = [tok["domain"]] + ([tok["reference"]] if tok.get("reference") else [])
    lines = [
        "tokenizer" + (f" ({report['model']})" if report.get("model") else ""),
        _row("", "domain", *(["reference"] if len(cols) > 1 else [])),
    ]
    lines += [
        _row("unknown tokens", *(_pct(c["unk_rate"]) for c in cols)),
        _row("distinct chars giving unk", *(f"{c['unk_chars']}/{c['chars']}" for c in cols)),
        _row("  share of distinct chars", *(_pct(c["unk_char_rate"]) for c in cols)),
        _row("  share of char occurrences", *(_pct(c["unk_char_occurrence_rate"]) for c in cols)),
        _row("pieces per word", *(f"{c['pieces_per_word']:.3f}" for c in cols)),
        _row("words cut into 2+ pieces", *(_pct(c["fragmented_word_rate"]) for c in cols)),
        _row("tokens", *(f"{c['tokens']:,}" for c in cols)),
    ]
    return lines


def _vocabulary_lines(vocab: dict[str, Any]) -> list[str]:
    lines = [
        "vocabulary (word types: regex words, jieba for Chinese)",
        _row(
            "word types (domain / reference)",
            f"{vocab['domain_types']:,}",
            f"{vocab['reference_types']:,}",
        ),
        _row("jaccard of type sets", f"{vocab['jaccard']:.3f}"),
        _row("domain types seen in reference", _pct(vocab["type_coverage"])),
        _row("domain occurrences seen in reference", _pct(vocab["occurrence_coverage"])),
    ]
    if vocab["unseen_ratio"] is not None:
        lines.append(_row("unseen words vs held-out reference", f"{vocab['unseen_ratio']:.2f}×"))
    top = vocab["over_represented"]
    if top:
        lines.append("  most over-represented domain words (domain count / reference count):")
        items = [f"{w['word']} ({w['domain']}/{w['reference']})" for w in top]
        for i in range(0, len(items), 5):
            lines.append("    " + ", ".join(items[i : i + 5]))
    return lines


def _perplexity_lines(ppl: dict[str, Any]) -> list[str]:
    if "skipped" in ppl:
        return ["perplexity", f"  skipped: {ppl['skipped']}"]
    lines = [f"perplexity ({ppl['objective']})"]
    for name in ("domain", "reference"):
        if name in ppl:
            lines.append(
                _row(name, f"{ppl[name]['perplexity']:.2f}", f"{ppl[name]['targets']:,} targets")
            )
    if "ratio" in ppl:
        lines.append(_row("domain / reference", f"{ppl['ratio']:.2f}×"))
    return lines


def _task_lines(task: dict[str, Any]) -> list[str]:
    labels = task["labels"]
    lines = [f"task data ({task['size']:,} examples, lengths on {task['sampled']:,})"]
    if labels["kind"] == "tags":
        counts, shares = labels["entities"], labels["entity_shares"]
        lines.append(_row("entity type", "count", "share"))
        lines.append(_row("examples with an entity", _pct(labels["examples_with_entity"])))
    else:
        counts, shares = labels["labels"], labels["shares"]
        lines.append(_row("label", "count", "share"))
    for name, count in list(counts.items())[:20]:
        lines.append(_row(str(name)[:34], f"{count:,}", _pct(shares[name])))
    if len(counts) > 20:
        lines.append(f"  ... {len(counts) - 20} more")
    lines.append(_row("length", "words", "tokens"))
    words, tokens = task["length_words"], task["length_tokens"]
    for key in ("mean", "median", "p95", "max"):
        lines.append(_row(key, f"{words[key]:g}", f"{tokens[key]:g}"))
    lines.append(
        _row("share over 128 / 256 tokens", _pct(tokens["over_128"]), _pct(tokens["over_256"]))
    )
    return lines


def format_shift(report: dict[str, Any]) -> str:
    """Render a report of ``analyse_shift`` (or ``analyse_files``) as aligned text.

    Args:
        report: The report.

    Returns:
        Multi-line text: corpus sizes, vocabulary, tokenizer, perplexity, task data, verdict.

    """
    corpus = report["corpus"]
    files = report.get("files") or {}
    lines = [
        f"domain     {files.get('domain') or 'texts'}: {corpus['domain_documents']:,} "
        f"documents ({corpus['domain_sampled']:,} analysed)"
    ]
    if corpus["reference_documents"]:
        lines.append(
            f"reference  {files.get('reference') or 'texts'}: "
            f"{corpus['reference_documents']:,} documents ({corpus['reference_sampled']:,} "
            "analysed)"
        )
    sections: list[list[str]] = [lines]
    if report.get("vocabulary"):
        sections.append(_vocabulary_lines(report["vocabulary"]))
    sections.append(_tokenizer_lines(report))
    if report.get("perplexity"):
        sections.append(_perplexity_lines(report["perplexity"]))
    if report.get("task_data"):
        sections.append(_task_lines(report["task_data"]))
    verdict = report["verdict"]
    tail = [f"verdict: {verdict['level'].upper()} shift", f"  {verdict['summary']}"]
    tail += [f"  - {reason}" for reason in verdict["reasons"]]
    tail += [f"  advice: {advice}" for advice in verdict["advice"]]
    tail.append(f"({report['seconds']:.1f} s)")
    sections.append(tail)
    return "\n\n".join("\n".join(section) for section in sections)
