"""Generation metrics: BLEU and chrF (sacrebleu), ROUGE (rouge-score) and exact match.

ROUGE's default tokenizer keeps only ``[a-z0-9]`` runs, so Chinese text scores 0. Texts are
tokenised here instead: every CJK character is a token (the usual choice for Chinese ROUGE,
e.g. LCSTS), other text splits into lower-cased letter/digit runs, which for plain English
equals rouge-score's own tokenisation (without stemming). BLEU uses sacrebleu's ``zh``
tokenizer when the references contain CJK characters, its ``13a`` default otherwise.
"""

from __future__ import annotations

import re
from typing import Any

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]|[^\W_]+", re.UNICODE
)
_SPACE = re.compile(r"\s+")
ROUGE_TYPES = {"rouge1": "rouge1", "rouge2": "rouge2", "rouge_l": "rougeL"}


class CJKRougeTokenizer:
    """rouge-score tokenizer: one token per CJK character, lower-cased word runs otherwise."""

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text``."""
        return _TOKEN.findall(text.lower())


def normalize_answer(text: str) -> str:
    """Exact-match normalisation: whitespace runs collapsed and trimmed (case is kept)."""
    return _SPACE.sub(" ", text).strip()


def generation_metrics(
    predictions: list[str], references: list[str], metrics: list[str]
) -> dict[str, Any]:
    """Corpus scores of ``predictions`` against one reference each.

    Args:
        predictions: Generated texts.
        references: Expected texts, aligned with ``predictions``.
        metrics: Any of ``rouge1``, ``rouge2``, ``rouge_l`` (mean F1, 0-100), ``bleu`` and
            ``chrf`` (sacrebleu corpus scores, 0-100), ``exact_match`` (fraction); other names
            are ignored.

    Returns:
        The requested scores, plus ``generated`` (how many examples were scored).

    """
    out: dict[str, Any] = {"generated": len(predictions)}
    if not predictions:
        return out
    cjk = any(CJK.search(r) for r in references)
    if "bleu" in metrics:
        from sacrebleu.metrics import BLEU

        bleu = BLEU(tokenize="zh" if cjk else "13a")
        out["bleu"] = round(float(bleu.corpus_score(predictions, [references]).score), 4)
        out["bleu_signature"] = str(bleu.get_signature())
    if "chrf" in metrics:
        from sacrebleu.metrics import CHRF

        out["chrf"] = round(float(CHRF().corpus_score(predictions, [references]).score), 4)
    wanted = [ROUGE_TYPES[m] for m in ROUGE_TYPES if m in metrics]
    if wanted:
        from rouge_score.rouge_scorer import RougeScorer

        scorer = RougeScorer(wanted, tokenizer=CJKRougeTokenizer())
        sums = dict.fromkeys(wanted, 0.0)
        for prediction, reference in zip(predictions, references, strict=True):
            for name, score in scorer.score(reference, prediction).items():
                sums[name] += score.fmeasure
        for ours, theirs in ROUGE_TYPES.items():
            if theirs in sums:
                out[ours] = round(100.0 * sums[theirs] / len(predictions), 4)
    if "exact_match" in metrics:
        hits = sum(
            normalize_answer(p) == normalize_answer(r)
            for p, r in zip(predictions, references, strict=True)
        )
        out["exact_match"] = hits / len(predictions)
    return out
