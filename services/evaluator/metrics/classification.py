"""Classification metrics: accuracy, macro-F1, per-label precision/recall/F1, confusion matrix.

scikit-learn computes the counts. A prediction that is not one of the task's labels is malformed:
it is scored as wrong (a miss for the gold label, a false positive for no label) and shows up in
its own "(invalid)" column of the confusion matrix.

Macro-F1 averages over the labels that occur in the gold answers or in the valid predictions, as
scikit-learn does by default: a label absent from a small test set and never predicted has no
defined F1 and is not counted as 0."""

from __future__ import annotations

import re

from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from services.evaluator.metrics.common import ExampleScore, TaskScores, check_lengths

INVALID = "(invalid)"
_EDGE = re.compile(r"^[\s\"'`*.:;,!?()\[\]]+|[\s\"'`*.:;,!?()\[\]]+$")


def normalize_label(text: str, labels: list[str]) -> str | None:
    """The label a prediction names, or None. Exact match first; then the same after stripping
    quotes, brackets and punctuation around it and folding case (``"Positive."`` → ``positive``).
    Never a substring search: "not positive" must not read as "positive"."""
    text = (text or "").strip()
    if text in labels:
        return text
    folded = _EDGE.sub("", text).casefold()
    matches = [label for label in labels if label.casefold() == folded]
    return matches[0] if len(matches) == 1 else None


def evaluate(golds: list[str], predictions: list[str], labels: list[str]) -> TaskScores:
    check_lengths(golds, predictions)
    predicted: list[str] = []
    examples: list[ExampleScore] = []
    for gold, raw in zip(golds, predictions):
        label = normalize_label(raw, labels)
        if label is None:
            shown = raw if len(raw) <= 60 else raw[:57] + "..."
            examples.append(ExampleScore(0.0, f"{shown!r} is not one of the labels", {"label": None}))
            predicted.append(INVALID)
        else:
            examples.append(ExampleScore(float(label == gold), None, {"label": label}))
            predicted.append(label)
    if not golds:
        return TaskScores({"accuracy": 0.0, "macro_f1": 0.0}, [], {})
    present = [label for label in labels if label in set(golds) | set(predicted)]
    # Gold labels outside the task's list would be a bug upstream; count them rather than crash.
    present += sorted({g for g in golds if g not in labels})
    precision, recall, f1, support = precision_recall_fscore_support(
        golds, predicted, labels=present, average=None, zero_division=0)
    macro_f1 = float(f1.mean()) if len(present) else 0.0
    columns = present + ([INVALID] if INVALID in predicted else [])
    matrix = confusion_matrix(golds, predicted, labels=columns)
    per_label = {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(present, precision, recall, f1, support)
    }
    return TaskScores(
        metrics={"accuracy": float(accuracy_score(golds, predicted)), "macro_f1": macro_f1},
        examples=examples,
        extra={
            "per_label": per_label,
            # Rows: gold labels (present); columns: predicted labels (+ "(invalid)").
            "confusion_matrix": {"rows": present, "columns": columns,
                                 "counts": matrix[: len(present)].tolist()},
        },
    )
