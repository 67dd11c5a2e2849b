"""Validator settings: one dataclass per filter, with the defaults a user gets when task.yaml says
nothing. Settings come from task.yaml's ``validation:`` section, overridden key by key by the
request's ``config``; an unknown section or key is an InvalidArgument that names it (a typo must
not silently fall back to a default)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import InvalidArgument
from services.common.settings import build_settings


@dataclass
class FormatConfig:
    """Outputs that do not fit the task (label, JSON Schema, tool schema) → ``format``."""

    enabled: bool = True


@dataclass
class GroundedConfig:
    """Output text that does not occur in the source text (a hallucinated entity, an answer that is
    not in the passage) → ``ungrounded``. Opt-in: some extraction tasks normalise values (ISO dates,
    units), which never occur verbatim in the input."""

    enabled: bool = False
    # Dotted paths into the output JSON ("entities.text"; a step through a list applies to every
    # item). Empty: every string leaf whose schema node is free text (no enum/const).
    fields: list[str] = field(default_factory=list)
    # "auto" (extraction: the input, plus the context where a row has one; qa-open-book: the
    # context), "input", "context" or "both" (either one).
    source: str = "auto"
    # Match the output text against the source with case.
    case_sensitive: bool = False


GROUNDED_SOURCES = ("auto", "input", "context", "both")


@dataclass
class LengthConfig:
    """Token bounds measured with the student's tokenizer → ``too_long`` (never truncated)."""

    enabled: bool = True
    # A catalog name or a local checkpoint/tokenizer folder; empty: the task's student.
    tokenizer: str = ""
    # Longest prompt (system + input [+ context]) in the student's tokens.
    max_input_tokens: int = 1024
    # Longest answer in the student's tokens.
    max_output_tokens: int = 512
    # The student's training context: prompt (system + input [+ context]) + answer must fit.
    max_total_tokens: int = 2048


@dataclass
class DuplicateConfig:
    """Exact duplicates of the input after normalisation (case, whitespace, punctuation) → ``duplicate``."""

    enabled: bool = True
    # Also reject exact copies of a seed.
    against_seeds: bool = True


@dataclass
class NearDuplicateConfig:
    """MinHash LSH over character shingles of the normalised input → ``near_duplicate``."""

    enabled: bool = True
    # Estimated Jaccard similarity at or above which two inputs are near duplicates.
    threshold: float = 0.8
    # MinHash permutations (more: a finer similarity estimate, slower).
    num_perm: int = 64
    # Characters per shingle (1-8).
    shingle_size: int = 5
    # Also reject near copies of a seed.
    against_seeds: bool = True


@dataclass
class TestLeakConfig:
    """Inputs that are copies or near copies of a held-out test input → ``test_leak``."""

    enabled: bool = True
    # Word similarity 2·LCS / (|a| + |b|) of the normalised inputs (1.0: equal), at or above which a
    # row leaks: an n-word copy with one word changed scores 1 - 1/n, with k extra words 2n / (2n + k).
    threshold: float = 0.8
    # Raise the threshold to just above the most similar pair of distinct real examples (seed inputs
    # of one class, test inputs), so a row is no leak for being as close to a test input as two real
    # examples are to each other; the report's notes give the outcome.
    calibrate: bool = True


@dataclass
class OffTopicConfig:
    """TF-IDF cosine similarity of the input to the task description, topics and seeds → ``off_topic``."""

    enabled: bool = True
    # Similarity below which an input is off topic.
    threshold: float = 0.05
    # "word" or "char_wb" (scikit-learn analyzers).
    analyzer: str = "word"
    # Shortest n-gram of the TF-IDF analyzer.
    ngram_min: int = 1
    # Longest n-gram of the TF-IDF analyzer.
    ngram_max: int = 1
    # With fewer seed inputs than this the check is skipped (noted in the report).
    min_seeds: int = 3


@dataclass
class LabelBalanceConfig:
    """No label above ``max_share`` of the accepted rows → ``label_imbalance`` (classification)."""

    enabled: bool = True
    # 0 means automatic: twice the fair share, min(1, 2 / number of labels).
    max_share: float = 0.0


@dataclass
class LabelFloorConfig:
    """Classification: filters must not empty a class. A label left with fewer than ``min_rows``
    accepted rows gets back its best rows that only a soft filter rejected (low_confidence,
    disagreement, label_imbalance, judge_rejected), most confident first; labels still short are
    listed in the report's ``thin_labels``."""

    enabled: bool = True
    # Rows per label the validator tries to keep (and below which a label is reported as thin).
    min_rows: int = 5


@dataclass
class LabelConfidenceConfig:
    """The teacher's probability for the label it chose below ``min_probability`` → ``low_confidence``."""

    enabled: bool = True
    # The teacher's probability for its label below which the row is rejected.
    min_probability: float = 0.5
    # When true, a row that carries no probability is rejected too; otherwise it passes.
    require: bool = False


@dataclass
class AgreementConfig:
    """Disagreement with a quick seed-only student → ``disagreement``. Two sources, either or both:
    a predictions JSONL ({"id" or "input", "output"} per line), or an embedded TF-IDF + logistic
    regression classifier fitted on the seeds (classification only)."""

    enabled: bool = False
    # A JSONL of the seed-only student's answers, one per generated row.
    predictions: str = ""
    # Train a quick classifier on the seeds and reject rows whose label it disagrees with.
    seed_classifier: bool = False
    # The seed classifier only vetoes when it is at least this sure of its own label.
    min_classifier_probability: float = 0.6


@dataclass
class JudgeConfig:
    """The teacher grades each example (generator's Complete RPC) → ``judge_rejected``."""

    enabled: bool = False
    # Empty: the task's judge_instructions.
    instructions: str = ""
    # Probability of "yes" below which the example is rejected.
    threshold: float = 0.5
    # Examples graded per Complete call.
    batch_size: int = 16
    # Seconds one grading call may take.
    timeout_seconds: float = 300.0


@dataclass
class ValidatorConfig:
    # Rows processed together (bounded memory: only one batch is held at a time).
    batch_size: int = 1024
    format: FormatConfig = field(default_factory=FormatConfig)
    grounded: GroundedConfig = field(default_factory=GroundedConfig)
    length: LengthConfig = field(default_factory=LengthConfig)
    duplicate: DuplicateConfig = field(default_factory=DuplicateConfig)
    near_duplicate: NearDuplicateConfig = field(default_factory=NearDuplicateConfig)
    test_leak: TestLeakConfig = field(default_factory=TestLeakConfig)
    off_topic: OffTopicConfig = field(default_factory=OffTopicConfig)
    label_balance: LabelBalanceConfig = field(default_factory=LabelBalanceConfig)
    label_floor: LabelFloorConfig = field(default_factory=LabelFloorConfig)
    label_confidence: LabelConfidenceConfig = field(default_factory=LabelConfidenceConfig)
    agreement: AgreementConfig = field(default_factory=AgreementConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_config(task_section: dict[str, Any] | None, overrides: dict[str, Any] | None = None) -> ValidatorConfig:
    """Defaults ← task.yaml ``validation:`` ← request ``config``; checked as it is built."""
    for source in (task_section, overrides):
        if source is not None and not isinstance(source, dict):
            raise InvalidArgument(f"validation settings must be a mapping, got {source!r}")
    config = build_settings(ValidatorConfig, task_section, overrides, where="validation")
    _check_ranges(config)
    return config


def _check_ranges(config: ValidatorConfig) -> None:
    def unit(value: float, where: str) -> None:
        if not 0.0 <= value <= 1.0:
            raise InvalidArgument(f"{where} must be between 0 and 1, got {value}")

    def positive(value: int, where: str) -> None:
        if value < 1:
            raise InvalidArgument(f"{where} must be at least 1, got {value}")

    positive(config.batch_size, "validation.batch_size")
    for name in ("max_input_tokens", "max_output_tokens", "max_total_tokens"):
        positive(getattr(config.length, name), f"validation.length.{name}")
    unit(config.near_duplicate.threshold, "validation.near_duplicate.threshold")
    positive(config.near_duplicate.num_perm, "validation.near_duplicate.num_perm")
    if not 1 <= config.near_duplicate.shingle_size <= 8:
        raise InvalidArgument("validation.near_duplicate.shingle_size must be between 1 and 8 (bytes), "
                              f"got {config.near_duplicate.shingle_size}")
    unit(config.test_leak.threshold, "validation.test_leak.threshold")
    unit(config.off_topic.threshold, "validation.off_topic.threshold")
    if config.off_topic.analyzer not in ("word", "char_wb", "char"):
        raise InvalidArgument(f"validation.off_topic.analyzer must be word, char_wb or char, "
                              f"got {config.off_topic.analyzer!r}")
    positive(config.off_topic.ngram_min, "validation.off_topic.ngram_min")
    if config.off_topic.ngram_max < config.off_topic.ngram_min:
        raise InvalidArgument("validation.off_topic.ngram_max must be >= ngram_min")
    unit(config.label_balance.max_share, "validation.label_balance.max_share")
    positive(config.label_floor.min_rows, "validation.label_floor.min_rows")
    unit(config.label_confidence.min_probability, "validation.label_confidence.min_probability")
    unit(config.agreement.min_classifier_probability, "validation.agreement.min_classifier_probability")
    if config.agreement.enabled and not (config.agreement.predictions or config.agreement.seed_classifier):
        raise InvalidArgument("validation.agreement is enabled but has neither predictions (a JSONL of the "
                              "seed-only student's answers) nor seed_classifier: true")
    if config.grounded.source not in GROUNDED_SOURCES:
        raise InvalidArgument(f"validation.grounded.source must be one of {', '.join(GROUNDED_SOURCES)}, "
                              f"got {config.grounded.source!r}")
    for index, path in enumerate(config.grounded.fields):
        if not path or any(not step or "[" in step or "]" in step for step in path.split(".")):
            raise InvalidArgument(f"validation.grounded.fields[{index}]: {path!r} is not a dotted path into the "
                                  "output (e.g. entities.text; a step through a list applies to every item)")
    unit(config.judge.threshold, "validation.judge.threshold")
    positive(config.judge.batch_size, "validation.judge.batch_size")
