"""Off-topic: a TF-IDF model fitted on what the task is about (description, input description,
topics, label descriptions, seed inputs); a row whose input's best cosine similarity to any of
those texts is below the threshold is dropped. Cheap, embedded and deterministic; the default
threshold is low on purpose so that it removes inputs that share (almost) no vocabulary with
the task rather than judging fine topical boundaries (that is the LLM judge's job)."""

from __future__ import annotations

from sklearn.feature_extraction.text import TfidfVectorizer

from services.common.taskspec import TaskSpec, topic_texts
from services.validator.config import OffTopicConfig
from services.validator.row import Row


class OffTopicFilter:
    reason = "off_topic"

    def __init__(self, config: OffTopicConfig, spec: TaskSpec, seed_inputs: list[str]) -> None:
        self.config = config
        self.references = topic_texts(spec, seed_inputs)
        self.matrix = None
        self.skipped = len(seed_inputs) < config.min_seeds
        if self.skipped:  # a description alone is too little text to judge topicality by
            return
        self.vectorizer = TfidfVectorizer(analyzer=config.analyzer, ngram_range=(config.ngram_min, config.ngram_max),
                                          sublinear_tf=True, lowercase=True)
        try:
            self.matrix = self.vectorizer.fit_transform(self.references).T.tocsr()
        except ValueError:  # no vocabulary at all (e.g. only stop words): nothing to compare with
            self.matrix = None

    def similarities(self, texts: list[str]) -> list[float]:
        if self.matrix is None or not texts:  # nothing to compare with: everything passes
            return [1.0] * len(texts)
        scores = (self.vectorizer.transform(texts) @ self.matrix).max(axis=1).toarray().ravel()
        return [float(x) for x in scores]

    def apply(self, rows: list[Row]) -> None:
        for row, sim in zip(rows, self.similarities([row.input for row in rows])):
            if sim < self.config.threshold:
                row.reject(self.reason, f"input's TF-IDF similarity to the task description and seeds is "
                           f"{sim:.3f} < {self.config.threshold}")

    def notes(self) -> list[str]:
        if self.skipped:
            return [f"off_topic: fewer than {self.config.min_seeds} seed inputs; topicality was not checked"]
        if self.matrix is None:
            return ["off_topic: the task description and seeds have no usable vocabulary; not checked"]
        return []
