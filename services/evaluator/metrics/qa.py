"""QA metrics: exact match, token F1 (both SQuAD-style), ROUGE-L, and the optional LLM judge's
prompt and verdict parsing.

Answers are normalized the SQuAD way before comparison: lower case, punctuation and the articles
a/an/the removed, whitespace collapsed. ROUGE-L is the F-measure of Google's ``rouge-score``
package, fed with the same normalized tokens (its own tokenizer drops every non-ASCII character,
which would score two answers in Greek as identical)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

from rouge_score import rouge_scorer

from services.evaluator.metrics.common import ExampleScore, TaskScores, check_lengths, mean

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = (text or "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION and not unicodedata.category(ch).startswith("P"))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def exact_match(gold: str, predicted: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(predicted))


def token_f1(gold: str, predicted: str) -> float:
    gold_tokens, pred_tokens = answer_tokens(gold), answer_tokens(predicted)
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


class _Tokenizer:
    """The rouge-score tokenizer interface over our normalization."""

    def tokenize(self, text: str) -> list[str]:
        return answer_tokens(text)


_ROUGE = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())


def rouge_l(gold: str, predicted: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens)."""
    if not answer_tokens(gold) and not answer_tokens(predicted):
        return 1.0
    return float(_ROUGE.score(gold, predicted)["rougeL"].fmeasure)


def evaluate(golds: list[str], predictions: list[str], judge_verdicts: list[float] | None = None) -> TaskScores:
    check_lengths(golds, predictions)
    examples: list[ExampleScore] = []
    ems, f1s, rouges = [], [], []
    for index, (gold, raw) in enumerate(zip(golds, predictions)):
        em, f1, rl = exact_match(gold, raw), token_f1(gold, raw), rouge_l(gold, raw)
        ems.append(em)
        f1s.append(f1)
        rouges.append(rl)
        details = {"exact": bool(em), "token_f1": f1, "rouge_l": rl}
        if judge_verdicts is not None:
            details["judge"] = judge_verdicts[index]
        examples.append(ExampleScore(f1, "empty answer" if not (raw or "").strip() else None, details))
    metrics = {"exact_match": mean(ems), "token_f1": mean(f1s), "rouge_l": mean(rouges)}
    if judge_verdicts is not None:
        metrics["judge_score"] = mean(judge_verdicts)
    return TaskScores(metrics, examples)


# ----- LLM judge ------------------------------------------------------------------------------
JUDGE_CHOICES = ["yes", "no"]


def judge_prompt(question: str, reference: str, answer: str, instructions: str = "", context: str = "") -> str:
    """A raw few-shot-free prompt that a base or chat teacher can continue with "yes" or "no"
    (the generator constrains the answer to those two words)."""
    parts = ["You grade answers to questions. Reply yes if the candidate answer means the same as the "
             "reference answer (wording may differ), otherwise no."]
    if instructions.strip():
        parts.append("Grading instructions: " + instructions.strip())
    if context.strip():
        parts.append("Passage: " + context.strip())
    parts += [f"Question: {question.strip()}", f"Reference answer: {reference.strip()}",
              f"Candidate answer: {answer.strip()}", "Is the candidate answer correct (yes or no)? Answer:"]
    return "\n".join(parts)


def judge_verdict(text: str, probabilities: dict[str, float] | None = None) -> float:
    """1.0 / 0.0 from the judge's reply, or P(yes) when the generator returned choice
    probabilities (a softer, less noisy signal from a weak judge)."""
    if probabilities and "yes" in probabilities:
        return float(probabilities["yes"])
    return float((text or "").strip().lower().startswith("yes"))
