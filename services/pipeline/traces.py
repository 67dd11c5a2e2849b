"""The traces stage's work: production traces (services.common.traces) → seeds and a test set.

1. **Curate**: drop empty inputs, exact duplicates (normalised text), near duplicates (datasketch
   MinHash LSH over character shingles, the validator's measure), copies of a seed (already a
   seed), copies or near copies of a test.jsonl input (test-set leaks) and, where there are seeds
   to judge by, traces off the task (TF-IDF similarity to the task description, labels and seeds,
   as the validator's off_topic filter measures it).
2. **Relabel**: the teacher answers every kept trace twice — greedy and one sample — and where the
   two disagree a committee of ``committee_size`` answers in all votes; a trace without a majority
   is dropped (``teacher_unsure``), as is one whose majority answer is not valid for the task.
3. **Split** without leakage: near duplicates are already one trace, so the held-out test traces
   (without a test.jsonl) share no near copy with a seed; seeds are chosen label by label so that
   rare labels are represented.

Everything here is deterministic for a given ``random_seed`` and the teacher's answers; the
teacher is reached through a callable, so this module stays grpc-free."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datasketch import MinHash, MinHashLSH

from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.settings import build_settings
from services.common.taskspec import (
    MIN_SEEDS,
    Example,
    OutputError,
    TaskSpec,
    canonical_json,
    check_output,
    normalize_text,
    topic_texts,
)
from services.common.traces import Trace

# (rows to answer, temperature, random seed) → one answer (raw text) per row.
LabelFn = Callable[[list[Example], float, int], list[str]]

DROP_REASONS = ("empty", "duplicate", "near_duplicate", "seed_copy", "test_leak", "off_topic",
                "teacher_unsure", "teacher_invalid")


@dataclass
class TracesSettings:
    # Curated traces that become seeds, at most (after the task's own seeds.jsonl, which always
    # stays); the rest are counted as unused. The teacher sees a few of them as shots, the
    # seed-only baseline and the student train on all of them.
    max_seeds: int = 200
    # Without a test.jsonl: the share of curated traces held out as the test set (their labels are
    # the teacher's, so scores on them measure agreement with the teacher).
    test_fraction: float = 0.2
    # Without a test.jsonl: held-out test traces, at most.
    max_test: int = 300
    # Teacher answers per trace where its greedy answer and a sample disagree (majority vote).
    committee_size: int = 5
    # Sampling temperature of the committee's answers after the first, greedy one.
    committee_temperature: float = 0.8
    # Estimated Jaccard similarity of character shingles at or above which two traces are one.
    near_duplicate_threshold: float = 0.8
    # TF-IDF similarity (character 3-5-grams) below which a trace is off the task, when it is below
    # this both to the task's texts (description, labels, seeds) and to every trace that is on the
    # task by that measure: noise such as gibberish, emoji or another language.
    relevance_threshold: float = 0.05
    # Shuffles the traces before the split.
    random_seed: int = 0

    def validate(self) -> None:
        if self.max_seeds < 1 or self.max_test < 1:
            raise InvalidArgument("traces.max_seeds and traces.max_test must be at least 1")
        if not 0.0 < self.test_fraction < 1.0:
            raise InvalidArgument(f"traces.test_fraction must be between 0 and 1, got {self.test_fraction}")
        if self.committee_size < 2:
            raise InvalidArgument(f"traces.committee_size must be at least 2, got {self.committee_size}")
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            raise InvalidArgument("traces.near_duplicate_threshold must be in (0, 1]")

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> TracesSettings:
        return build_settings(cls, section, where="traces")


@dataclass
class CuratedTraces:
    """What the traces became: the rows, and for the report, what happened to every trace."""

    seeds: list[Example] = field(default_factory=list)  # new seeds (the task's own are not repeated)
    test: list[Example] = field(default_factory=list)  # held out from traces; empty with a test.jsonl
    dropped: list[dict[str, Any]] = field(default_factory=list)  # {"line", "reason", "detail"}
    read: int = 0
    unused: int = 0  # curated and labelled, beyond max_seeds
    committee: int = 0  # traces the teacher disagreed with itself on (answered by the committee)
    with_old_answer: int = 0
    old_answer_agrees: int = 0  # of those, the teacher's label equals the old model's answer
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        by_reason = Counter(d["reason"] for d in self.dropped)
        return {reason: by_reason.get(reason, 0) for reason in DROP_REASONS}

    def summary(self) -> dict[str, Any]:
        return {"read": self.read, "dropped": sum(self.counts().values()), "dropped_by_reason": self.counts(),
                "seeds": len(self.seeds), "test": len(self.test), "unused": self.unused,
                "committee": self.committee, "with_old_answer": self.with_old_answer,
                "old_answer_agrees": self.old_answer_agrees, "notes": list(self.notes)}


def _shingles(text: str, k: int = 5) -> list[bytes]:
    data = text.encode("utf-8")
    return [data[i:i + k] for i in range(max(1, len(data) - k + 1))]


NUM_PERM = 128


def _minhash(text: str) -> MinHash:
    signature = MinHash(num_perm=NUM_PERM, seed=1)
    signature.update_batch(_shingles(text))
    return signature


def _answer_key(spec: TaskSpec, answer: str) -> str:
    """Two answers are one vote when this is equal: the label, canonical JSON, folded text."""
    if spec.type == "classification":
        return answer.strip()
    if spec.is_structured():
        try:
            return canonical_json(json.loads(answer))
        except ValueError:
            return answer.strip()
    return normalize_text(answer)


def curate(spec: TaskSpec, traces: list[Trace], seeds: list[Example], test: list[Example],
           settings: TracesSettings) -> tuple[list[Trace], CuratedTraces]:
    """Step 1: the traces worth labelling, in file order, and the report of the rest."""
    report = CuratedTraces(read=len(traces))
    # Banding tuned towards recall (datasketch weighs false negatives 4x false positives here); every
    # candidate is then confirmed by its estimated Jaccard, so a false positive costs a comparison.
    lsh = MinHashLSH(threshold=settings.near_duplicate_threshold, num_perm=NUM_PERM, weights=(0.2, 0.8))
    signatures: dict[str, MinHash] = {}
    exact: dict[str, str] = {}

    def index(name: str, key: str, signature: MinHash | None = None) -> None:
        signatures[name] = signature or _minhash(key)
        lsh.insert(name, signatures[name])

    for number, example in enumerate(test):
        key = normalize_text(example.context + " " + example.input)
        exact.setdefault(key, f"test.jsonl:{example.metadata.get('line', number + 1)}")
        index(f"test.jsonl:{example.metadata.get('line', number + 1)}", key)
    for number, example in enumerate(seeds):
        key = normalize_text(example.context + " " + example.input)
        exact.setdefault(key, f"seeds.jsonl:{example.metadata.get('line', number + 1)}")
        index(f"seeds.jsonl:{example.metadata.get('line', number + 1)}", key)
    kept: list[Trace] = []
    for trace in traces:
        key = normalize_text(trace.context + " " + trace.input)
        if not key:
            report.dropped.append({"line": trace.line, "reason": "empty", "detail": "no words in the input"})
            continue
        if key in exact:
            where = exact[key]
            reason = "test_leak" if where.startswith("test") else "seed_copy" if where.startswith("seeds") \
                else "duplicate"
            report.dropped.append({"line": trace.line, "reason": reason, "detail": f"same input as {where}"})
            continue
        signature = _minhash(key)
        near = sorted(((signature.jaccard(signatures[name]), name) for name in lsh.query(signature)),
                      key=lambda pair: (-pair[0], pair[1]))
        if near and near[0][0] >= settings.near_duplicate_threshold:
            similarity, where = near[0]
            reason = "test_leak" if where.startswith("test") else "seed_copy" if where.startswith("seeds") \
                else "near_duplicate"
            report.dropped.append({"line": trace.line, "reason": reason,
                                   "detail": f"near copy of {where} (estimated Jaccard {similarity:.2f})"})
            continue
        exact[key] = f"traces.jsonl:{trace.line}"
        index(f"traces.jsonl:{trace.line}", key, signature)
        kept.append(trace)
    if kept:
        relevance = _Relevance(topic_texts(spec, [s.input for s in seeds]), [t.input for t in kept])
        on_topic = []
        for trace, (task_score, trace_score) in zip(kept, relevance.scores(settings.relevance_threshold)):
            if max(task_score, trace_score) < settings.relevance_threshold:
                report.dropped.append({"line": trace.line, "reason": "off_topic",
                                       "detail": f"TF-IDF similarity {task_score:.3f} to the task and seeds and "
                                                 f"{trace_score:.3f} to any on-task trace, both < "
                                                 f"{settings.relevance_threshold}"})
            else:
                on_topic.append(trace)
        kept = on_topic
    return kept, report


class _Relevance:
    """Each trace's best TF-IDF cosine similarity to the task's texts, and to any other trace that
    is itself on the task by that measure.

    A trace is off the task only when both are low: production traces come from one
    distribution, so a short on-task trace the seeds happen not to cover ("MPs vote on taxes
    tonight" scored 0.0 against a politics label) has a neighbour among the on-task traces, while
    noise (test pings, gibberish, another language) has none (noise next to noise does not count).
    Character n-grams, so that "phone" meets "phones"; still a vocabulary check: it drops noise,
    not a neighbouring topic."""

    BLOCK_CELLS = 20_000_000  # similarities held at once (~160 MB of float64): rows per block follow from it

    def __init__(self, references: list[str], texts: list[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True)
        matrix = self.vectorizer.fit_transform(references + texts)
        self.references = matrix[:len(references)].T.tocsr()
        self.texts = matrix[len(references):].tocsr()

    def scores(self, threshold: float) -> list[tuple[float, float]]:
        import numpy as np

        n = self.texts.shape[0]
        task = (self.texts @ self.references).max(axis=1).toarray().ravel() if self.references.shape[1] \
            else np.zeros(n)
        on_task = np.flatnonzero(task >= threshold)
        neighbour = np.zeros(n)
        if len(on_task):
            anchors = self.texts[on_task].T.tocsr()
            chunk = max(16, self.BLOCK_CELLS // len(on_task))
            for lo in range(0, n, chunk):
                block = (self.texts[lo:lo + chunk] @ anchors).toarray()
                rows = np.arange(lo, lo + block.shape[0])
                block[np.isin(rows, on_task)[:, None] & (rows[:, None] == on_task[None, :])] = 0.0  # not itself
                neighbour[lo:lo + block.shape[0]] = block.max(axis=1)
        return [(float(a), float(b)) for a, b in zip(task, neighbour)]


def _valid(spec: TaskSpec, answer: str) -> str | None:
    try:
        return check_output(spec, answer)
    except OutputError:
        return None


def relabel(spec: TaskSpec, traces: list[Trace], label: LabelFn, settings: TracesSettings,
            report: CuratedTraces, progress: Callable[[int, int], None] = lambda done, total: None
            ) -> list[Example]:
    """Step 2: every kept trace as an Example labelled by the teacher (greedy and one sample; the
    committee where they disagree). Rows the teacher could not settle are added to the report."""
    rows = [Example(input=t.input, output="", context=t.context, metadata={"line": t.line}) for t in traces]
    if not rows:
        return []
    total = settings.committee_size  # teacher passes at most: greedy, one sample, the committee's rest
    votes: list[list[str]] = [[a] for a in label(rows, 0.0, settings.random_seed)]
    progress(1, total)
    for i, answer in enumerate(label(rows, settings.committee_temperature, settings.random_seed + 1)):
        votes[i].append(answer)
    progress(2, total)
    unsettled = [i for i, v in enumerate(votes) if _answer_key(spec, v[0]) != _answer_key(spec, v[1])]
    report.committee = len(unsettled)
    for extra in range(settings.committee_size - 2):
        if not unsettled:
            break
        answers = label([rows[i] for i in unsettled], settings.committee_temperature, settings.random_seed + 2 + extra)
        for i, answer in zip(unsettled, answers):
            votes[i].append(answer)
        progress(3 + extra, total)
    labelled: list[Example] = []
    for trace, row, answers in zip(traces, rows, votes):
        counts = Counter(_answer_key(spec, a) for a in answers)
        top_key, top = counts.most_common(1)[0]
        if top * 2 <= len(answers):
            report.dropped.append({"line": trace.line, "reason": "teacher_unsure",
                                   "detail": f"no majority among the teacher's {len(answers)} answers "
                                             f"({', '.join(f'{k!r} x{n}' for k, n in counts.most_common(3))})"})
            continue
        answer = next(a for a in answers if _answer_key(spec, a) == top_key)
        output = _valid(spec, answer)
        if output is None:
            report.dropped.append({"line": trace.line, "reason": "teacher_invalid",
                                   "detail": f"the teacher's answer {answer[:80]!r} is not valid for the task"})
            continue
        metadata: dict[str, Any] = {"source": "trace", "trace_line": trace.line,
                                    "teacher_agreement": round(top / len(answers), 3)}
        if trace.answer is not None:
            report.with_old_answer += 1
            agrees = _answer_key(spec, trace.answer) == _answer_key(spec, output)
            report.old_answer_agrees += int(agrees)
            metadata["old_answer"] = trace.answer
            metadata["old_answer_agrees"] = agrees
        labelled.append(Example(input=row.input, output=output, context=row.context, metadata=metadata))
    return labelled


def split(spec: TaskSpec, rows: list[Example], user_seeds: int, has_test: bool, settings: TracesSettings,
          report: CuratedTraces) -> None:
    """Step 3: the labelled traces into the report's test and seeds (label by label)."""
    rng = random.Random(settings.random_seed)
    order = list(rows)
    rng.shuffle(order)
    if not has_test:
        n_test = min(settings.max_test, max(1, round(len(order) * settings.test_fraction)))
        if len(order) - n_test + user_seeds < MIN_SEEDS:
            raise FailedPrecondition(
                f"traces.jsonl: {len(order)} of {report.read} traces are left after curation and relabelling "
                f"({_dropped_text(report)}); with no test.jsonl, {n_test} go to the test set and at least "
                f"{MIN_SEEDS} seeds are needed. Give more traces, a seeds.jsonl or a test.jsonl")
        report.test, order = order[:n_test], order[n_test:]
    if spec.type == "classification":  # round-robin over labels: a rare label still gets seeds
        by_label: dict[str, list[Example]] = {}
        for row in order:
            by_label.setdefault(row.output, []).append(row)
        ranked: list[Example] = []
        while any(by_label.values()):
            for label in spec.labels:
                if by_label.get(label):
                    ranked.append(by_label[label].pop(0))
        order = ranked
    report.seeds, unused = order[:settings.max_seeds], order[settings.max_seeds:]
    report.unused = len(unused)
    if user_seeds + len(report.seeds) < MIN_SEEDS:
        raise FailedPrecondition(
            f"traces.jsonl: only {len(report.seeds)} traces became seeds ({_dropped_text(report)}) and "
            f"seeds.jsonl has {user_seeds}; at least {MIN_SEEDS} are needed")


def _dropped_text(report: CuratedTraces) -> str:
    counts = {k: v for k, v in report.counts().items() if v}
    return ", ".join(f"{v} {k}" for k, v in counts.items()) or "none dropped"
