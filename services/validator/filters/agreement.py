"""Agreement with a quick seed-only student: where a model trained on the seeds alone confidently
gives another answer than the teacher, the teacher's label is suspect. Two sources:

- ``predictions``: a JSONL of that student's answers, one ``{"id" | "input", "output"}`` per line
  (for instance the evaluator's output for a seed-only fine-tune); rows without a prediction pass;
- ``seed_classifier``: an embedded TF-IDF + logistic regression fitted on the seeds in
  milliseconds (classification only); it vetoes only when at least ``min_classifier_probability``
  sure of its own label."""

from __future__ import annotations

import json
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from services.common.errors import InvalidArgument
from services.common.jsonl import iter_jsonl
from services.common.taskspec import TaskSpec, canonical_json, normalize_text
from services.validator.config import AgreementConfig
from services.validator.row import Row


def _canonical(value: object) -> str:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value.strip()
        return canonical_json(parsed) if isinstance(parsed, (dict, list)) else value.strip()
    return canonical_json(value)


def load_predictions(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(by id, by normalised input) → canonical predicted output."""
    if not Path(path).is_file():
        raise InvalidArgument(f"validation.agreement.predictions: {path} is not a file")
    by_id: dict[str, str] = {}
    by_input: dict[str, str] = {}
    for item in iter_jsonl(Path(path), skip_partial_tail=False):
        if item.error or not isinstance(item.value, dict) or "output" not in item.value:
            raise InvalidArgument(f"validation.agreement.predictions: {Path(path).name}:{item.line}: "
                                  f"{item.error or 'expected an object with an output and an id or input'}")
        output = _canonical(item.value["output"])
        if item.value.get("id"):
            by_id[str(item.value["id"])] = output
        if isinstance(item.value.get("input"), str):
            by_input[normalize_text(item.value["input"])] = output
    return by_id, by_input


class AgreementFilter:
    reason = "disagreement"

    def __init__(self, config: AgreementConfig, spec: TaskSpec, seeds: list[tuple[str, str]],
                 predictions_path: Path | None) -> None:
        self.config = config
        self.by_id: dict[str, str] = {}
        self.by_input: dict[str, str] = {}
        self._notes: list[str] = []
        if predictions_path is not None:
            self.by_id, self.by_input = load_predictions(predictions_path)
        self.classifier = None
        if config.seed_classifier:
            labels = {output for _, output in seeds}
            if spec.type != "classification":
                self._notes.append("agreement: seed_classifier applies to classification tasks only; skipped")
            elif len(labels) < 2:
                self._notes.append("agreement: the seeds cover fewer than two labels; seed_classifier skipped")
            else:
                self.classifier = make_pipeline(
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
                    LogisticRegression(max_iter=1000, C=10.0, random_state=0))
                self.classifier.fit([text for text, _ in seeds], [output for _, output in seeds])

    def apply(self, rows: list[Row]) -> None:
        if self.by_id or self.by_input:
            for row in rows:
                predicted = self.by_id.get(row.id)
                if predicted is None:
                    predicted = self.by_input.get(normalize_text(row.input))
                if predicted is not None and predicted != _canonical(row.output):
                    row.reject(self.reason, f"seed-only student answered {predicted[:200]!r}")
        if self.classifier is not None:
            live = [row for row in rows if row.reason is None]
            if not live:
                return
            probabilities = self.classifier.predict_proba([row.input for row in live])
            classes = list(self.classifier.classes_)
            for row, probs in zip(live, probabilities):
                best = int(probs.argmax())
                if classes[best] != row.output and probs[best] >= self.config.min_classifier_probability:
                    row.reject(self.reason, f"seed classifier says {classes[best]!r} with probability "
                               f"{probs[best]:.2f} >= {self.config.min_classifier_probability}")

    def notes(self) -> list[str]:
        return list(self._notes)
