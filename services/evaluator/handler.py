"""The ``evaluate`` job: every candidate answers the same test examples in turn, then the task's
metrics, the report and the plots are written.

Predictions are appended to the operation's work directory as they come (one JSONL file per
candidate, fsynced per batch), so a restarted evaluator skips the candidates it had finished and
the examples it had answered, and never loads a model it no longer needs. A candidate that cannot
be loaded or reached is reported with its error (in the result too, with no score) and the others
are still scored; a single prediction that fails or cannot be read counts as wrong and is listed,
never crashes the run. Differences between candidates carry paired bootstrap intervals
(``services.evaluator.bootstrap``)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.artifacts import Artifact
from services.common.atomic import write_json_atomic
from services.common.config import ServiceConfig
from services.common.errors import (
    Cancelled,
    DistilleryError,
    FailedPrecondition,
    InvalidArgument,
    TaskFolderError,
)
from services.common.jobs import OperationContext
from services.common.jsonl import JsonlAppender, iter_jsonl, read_jsonl, write_jsonl_atomic
from services.common.references import ModelReferences
from services.common.taskspec import Example, OutputError, TaskSpec, canonical_json, check_output
from services.evaluator import bootstrap
from services.evaluator import report as report_mod
from services.evaluator.candidates import (
    ONNX,
    STUDENT,
    TEACHER,
    Candidate,
    CandidateSpec,
    EvalOptions,
    Prediction,
    build_candidate,
    model_resolver,
)
from services.evaluator.metrics import PRIMARY_METRIC, TaskScores, score_task
from services.evaluator.metrics.qa import JUDGE_CHOICES, judge_prompt, judge_verdict

log = logging.getLogger(__name__)

KIND = "evaluation"
_QA = ("qa-open-book", "qa-closed-book")


@dataclass
class EvaluationJob:
    """One evaluation, as its request asks for it (read by the servicer module from protobuf)."""

    task: TaskSpec
    test: Artifact
    seeds: Artifact | None
    candidates: list[CandidateSpec]
    options: EvalOptions


def load_test_examples(path: Path, task: TaskSpec, limit: int = 0) -> list[Example]:
    """test.jsonl → Examples with canonical gold outputs; a bad line is an error naming it (the
    gold answers must be right for the scores to mean anything)."""
    examples: list[Example] = []
    for item in iter_jsonl(path, skip_partial_tail=False):
        if item.error:
            raise TaskFolderError("test.jsonl", item.error, item.line)
        row = item.value
        if not isinstance(row, dict) or "input" not in row or "output" not in row:
            raise TaskFolderError("test.jsonl", 'each line must be an object with "input" and "output"', item.line)
        try:
            gold = check_output(task, row["output"])
        except OutputError as exc:
            raise TaskFolderError("test.jsonl", str(exc), item.line, "output") from None
        text = row["input"] if isinstance(row["input"], str) else canonical_json(row["input"])
        examples.append(Example(input=text, output=gold, context=str(row.get("context") or ""),
                                id=str(row.get("id") or ""), metadata=dict(row.get("metadata") or {})))
        if limit and len(examples) >= limit:
            break
    if not examples:
        raise InvalidArgument("test.jsonl is empty: nothing to evaluate")
    return examples


def seed_outputs(path: Path | None) -> list[str]:
    """The seeds' answers as text. Only the students' decode budget is sized from them, so a bad
    line is skipped rather than failing the evaluation (the generator reports seed errors)."""
    outputs: list[str] = []
    for item in iter_jsonl(path, skip_partial_tail=False) if path is not None else []:
        row = item.value
        if not item.error and isinstance(row, dict) and "output" in row:
            output = row["output"]
            outputs.append(output if isinstance(output, str) else canonical_json(output))
    return outputs


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class Evaluation:
    """One evaluation job over a work directory (the resumable part) and an output sink."""

    def __init__(self, job: EvaluationJob, examples: list[Example], work_dir: Path,
                 make_candidate: Callable[[CandidateSpec], Candidate],
                 progress: Callable[..., None] = lambda **_: None,
                 check_cancelled: Callable[[], None] = lambda: None,
                 judge: Callable[[list[str]], list[Any]] | None = None) -> None:
        self.job = job
        self.examples = examples
        self.work_dir = work_dir
        self.make_candidate = make_candidate
        self.progress = progress
        self.check_cancelled = check_cancelled
        self.judge = judge
        (work_dir / "predictions").mkdir(parents=True, exist_ok=True)
        self.descriptions: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []

    def _pred_path(self, index: int, spec: CandidateSpec) -> Path:
        return self.work_dir / "predictions" / f"{index:02d}-{_safe(spec.name)}.jsonl"

    def _done_rows(self, path: Path) -> dict[int, dict[str, Any]]:
        """Answers already written (a torn last line is dropped; a row whose example id no longer
        matches is predicted again)."""
        if not path.exists():
            return {}
        rows = {}
        for row in read_jsonl(path):
            index = int(row.get("index", -1))
            if 0 <= index < len(self.examples) and row.get("id") == self.examples[index].id:
                rows[index] = row
        return rows

    # ----- predicting -------------------------------------------------------------------------
    def predict_all(self) -> dict[str, list[dict[str, Any]]]:
        total = len(self.examples) * len(self.job.candidates)
        done_before = {spec.name: self._done_rows(self._pred_path(i, spec)) for i, spec in enumerate(self.job.candidates)}
        done = sum(len(rows) for rows in done_before.values())
        self.progress(done=done, total=total, stage="predicting", unit="examples")
        results: dict[str, list[dict[str, Any]]] = {}
        for index, spec in enumerate(self.job.candidates):
            rows = done_before[spec.name]
            candidate = self.make_candidate(spec)
            self.descriptions[spec.name] = candidate.describe()
            todo = [i for i in range(len(self.examples)) if i not in rows]
            if todo:
                done = self._predict_candidate(candidate, self._pred_path(index, spec), rows, todo, done, total)
            results[spec.name] = [rows[i] for i in range(len(self.examples)) if i in rows]
        return results

    def _predict_candidate(self, candidate: Candidate, path: Path, rows: dict[int, dict[str, Any]],
                           todo: list[int], done: int, total: int) -> int:
        name = candidate.name
        self.progress(stage=f"loading {name}", force=True)
        started = time.perf_counter()
        try:
            candidate.load()
        except Cancelled:
            raise
        except Exception as exc:  # one candidate's broken model must not sink the others
            self.errors[name] = _describe_error(exc)
            log.warning("candidate %s could not be loaded: %s", name, self.errors[name],
                        exc_info=not isinstance(exc, DistilleryError))
            return done
        log.info("candidate %s loaded in %.1fs", name, time.perf_counter() - started)
        try:
            with JsonlAppender(path) as out:
                for start in range(0, len(todo), candidate.batch_size):
                    self.check_cancelled()
                    batch = todo[start:start + candidate.batch_size]
                    try:
                        predictions = self._predict_batch(candidate, batch)
                    except Cancelled:
                        raise
                    except Exception as exc:  # unreachable teacher, broken model: report it, go on
                        self.errors[name] = _describe_error(exc)
                        log.warning("candidate %s failed after %d examples: %s", name, len(rows), self.errors[name],
                                    exc_info=not isinstance(exc, DistilleryError))
                        return done
                    new_rows = [_prediction_row(i, self.examples[i], p) for i, p in zip(batch, predictions)]
                    out.write_batch(new_rows)
                    rows.update({r["index"]: r for r in new_rows})
                    done += len(batch)
                    self.progress(done=done, total=total, stage=f"predicting: {name}",
                                  counters={f"{name}_done": float(len(rows))})
        finally:
            candidate.close()
        return done

    def _predict_batch(self, candidate: Candidate, batch: list[int]) -> list[Prediction]:
        examples = [self.examples[i] for i in batch]
        try:
            return candidate.predict(examples)
        except InvalidArgument as exc:
            if len(examples) == 1:  # this input cannot be answered (too long, empty): a wrong answer
                return [Prediction("", 0.0, 0, "", error=str(exc))]
            return [self._predict_batch(candidate, [i])[0] for i in batch]

    # ----- judging ----------------------------------------------------------------------------
    def judge_all(self, results: dict[str, list[dict[str, Any]]]) -> dict[str, list[float]]:
        if not (self.job.options.judge and self.job.task.type in _QA):
            return {}
        if self.judge is None:
            self.notes.append("LLM judge requested but no generator is configured; judge_score left out")
            return {}
        import json

        verdicts: dict[str, list[float]] = {}
        for spec in self.job.candidates:
            rows = results.get(spec.name) or []
            if len(rows) != len(self.examples):
                continue
            cache = self.work_dir / f"judge-{_safe(spec.name)}.json"
            if cache.exists():
                verdicts[spec.name] = json.loads(cache.read_text())
                continue
            self.check_cancelled()
            self.progress(stage=f"judging: {spec.name}", force=True)
            prompts = [judge_prompt(ex.input, ex.output, row["prediction"], self.job.task.judge_instructions,
                                    ex.context) for ex, row in zip(self.examples, rows)]
            try:
                completions = self.judge(prompts)
            except DistilleryError as exc:
                self.notes.append(f"LLM judge failed ({exc}); judge_score left out")
                return {}
            verdicts[spec.name] = [judge_verdict(c.text, dict(c.choice_probabilities)) for c in completions]
            write_json_atomic(cache, verdicts[spec.name], indent=None)  # a kill mid-write leaves no half cache
        self.notes.append("judge_score: the teacher (generator Complete RPC, answer constrained to yes/no) judges "
                          "each answer against the reference; the score is the mean P(yes)")
        return verdicts

    # ----- scoring ----------------------------------------------------------------------------
    def build_report(self, results: dict[str, list[dict[str, Any]]],
                     verdicts: dict[str, list[float]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        task, options = self.job.task, self.job.options
        primary = PRIMARY_METRIC[task.type]
        golds = [ex.output for ex in self.examples]
        candidates: list[dict[str, Any]] = []
        merged: list[dict[str, Any]] = []
        task_scores: dict[str, TaskScores] = {}
        for spec in self.job.candidates:
            entry: dict[str, Any] = {"name": spec.name, **self.descriptions.get(spec.name, {"kind": spec.kind}),
                                     "kind": spec.kind, "examples": len(self.examples)}
            rows = results.get(spec.name) or []
            if len(rows) != len(self.examples):
                entry["error"] = self.errors.get(spec.name, f"answered {len(rows)} of {len(self.examples)} examples")
                candidates.append(entry)
                continue
            texts = [r["prediction"] for r in rows]
            scores = score_task(task, golds, texts, [ex.metadata for ex in self.examples], verdicts.get(spec.name))
            task_scores[spec.name] = scores
            stats = report_mod.latency_stats([r["latency_s"] for r in rows], [r["completion_tokens"] for r in rows])
            malformed_items = []
            for ex, row, score in zip(self.examples, rows, scores.examples):
                reason = row.get("error") or score.malformed
                merged.append({"candidate": spec.name, "index": row["index"], "id": ex.id, "input": ex.input,
                               "gold": ex.output, "prediction": row["prediction"], "raw": row.get("raw", ""),
                               "score": score.score, "malformed": reason, "details": score.details,
                               "latency_ms": round(row["latency_s"] * 1000, 3),
                               "completion_tokens": row["completion_tokens"],
                               **({"label_probabilities": row["label_probabilities"]}
                                  if row.get("label_probabilities") else {})})
                if reason:
                    malformed_items.append({"id": ex.id, "reason": reason, "prediction": row.get("raw") or row["prediction"]})
            entry.update({"metrics": scores.metrics, **stats, "malformed": len(malformed_items),
                          "extra": scores.extra, "malformed_examples": malformed_items[:options.listed_malformed]})
            candidates.append(entry)
        comparisons = self.compare(candidates, task_scores, golds)
        report: dict[str, Any] = {
            "task": {"name": task.name, "type": task.type}, "examples": len(self.examples),
            "primary_metric": primary, "candidates": candidates, "notes": list(self.notes),
        }
        report.update(student_teacher_ratio(candidates, primary, options.trained_students))
        report.update(comparisons)
        if task.type in _QA:
            report["notes"].append("ROUGE-L: F-measure from Google's rouge-score package over SQuAD-normalized tokens")
        return report, merged

    def compare(self, candidates: list[dict[str, Any]], task_scores: dict[str, TaskScores],
                golds: list[str]) -> dict[str, Any]:
        """Paired bootstrap intervals on the primary metric for the pairs of ``comparison_pairs``;
        a pair whose metric has no per-example form is named in the notes, never guessed."""
        task, options = self.job.task, self.job.options
        primary = PRIMARY_METRIC[task.type]
        statistics = {name: bootstrap.metric_statistic(primary, scores, golds, task.labels)
                      for name, scores in task_scores.items()}
        comparisons = []
        for a, b in comparison_pairs(candidates, options.trained_students):
            if statistics.get(a) is None or statistics.get(b) is None:
                self.notes.append(f"no interval for {a} − {b}: {primary} has no per-example form")
                continue
            comparisons.append(bootstrap.compare(a, statistics[a], b, statistics[b], primary,
                                                 resamples=options.bootstrap_resamples,
                                                 seed=options.bootstrap_seed).to_dict())
        method = {"method": "paired percentile bootstrap over test examples", "metric": primary,
                  "resamples": options.bootstrap_resamples, "seed": options.bootstrap_seed,
                  "confidence": bootstrap.CONFIDENCE}
        return {"comparisons": comparisons, "comparison_method": method}


def is_trained_student(candidate: dict[str, Any], trained: list[str] | None = None) -> bool:
    """Trained students are the names in ``trained``, or else every student/ONNX candidate whose
    name does not mark it as a baseline (``base…``, ``…seed-only…``, ``…zero-shot…``)."""
    if trained:
        return candidate["name"] in trained
    name = candidate["name"].lower()
    return candidate["kind"] in (STUDENT, ONNX) and not (name.startswith("base") or "seed-only" in name
                                                          or "zero-shot" in name)


def _baseline_rank(candidate: dict[str, Any]) -> int:
    """Order of the comparisons: the teacher, then the seed-only student (the bar distillation
    must clear), then the base student, then anything else."""
    name = candidate["name"].lower()
    if candidate["kind"] == TEACHER:
        return 0
    return 1 if "seed-only" in name else 2 if name.startswith("base") else 3


def comparison_pairs(candidates: list[dict[str, Any]], trained: list[str] | None = None) -> list[tuple[str, str]]:
    """(a, b) for every difference a − b the report gives an interval for: each scored trained
    student against every other scored candidate (two trained students once), then each seed-only
    student against each base student (did training on the seeds alone help at all?)."""
    scored = [c for c in candidates if not c.get("error")]
    students = [c["name"] for c in scored if is_trained_student(c, trained)]
    others = sorted(scored, key=_baseline_rank)
    pairs = [(s, c["name"]) for i, s in enumerate(students) for c in others
             if c["name"] != s and c["name"] not in students[:i]]
    baselines = [c for c in scored if not is_trained_student(c, trained)]
    pairs += [(s["name"], b["name"]) for s in baselines if "seed-only" in s["name"].lower()
              for b in baselines if b["kind"] != TEACHER and b["name"].lower().startswith("base")]
    return pairs


def student_teacher_ratio(candidates: list[dict[str, Any]], primary: str,
                          trained: list[str] | None = None) -> dict[str, Any]:
    """Best trained student's primary metric ÷ the teacher's (trained: ``is_trained_student``).

    None, with ``ratio_note`` saying why, when the teacher or any trained student failed: a ratio
    over the survivors would silently measure something else than the job asked, and the
    pipeline gates a deployment on it."""
    failed = [c for c in candidates if c.get("error")]
    reasons = [f"{c['name']} failed: {c['error']}" for c in failed
               if c["kind"] == TEACHER or is_trained_student(c, trained)]
    if reasons:
        return {"student_teacher_ratio": None, "ratio_note": "; ".join(reasons)}
    scored = [c for c in candidates if not c.get("error")]
    teacher = next((c for c in scored if c["kind"] == TEACHER), None)
    students = [c for c in scored if is_trained_student(c, trained)]
    if teacher is None or not students:
        missing = [what for what, absent in (("teacher", teacher is None), ("trained student", not students))
                   if absent]
        return {"student_teacher_ratio": None,
                "ratio_note": f"no {' and no '.join(missing)} among the candidates"}
    best = max(students, key=lambda c: c["metrics"][primary])
    teacher_value, student_value = teacher["metrics"][primary], best["metrics"][primary]
    if teacher_value <= 0:
        return {"student_teacher_ratio": None, "ratio_note": f"the teacher scored 0 on {primary}"}
    return {"student_teacher_ratio": student_value / teacher_value,
            "ratio": {"student": best["name"], "student_value": student_value,
                      "teacher": teacher["name"], "teacher_value": teacher_value}}


def _prediction_row(index: int, example: Example, prediction: Prediction) -> dict[str, Any]:
    row: dict[str, Any] = {"index": index, "id": example.id, "prediction": prediction.text, "raw": prediction.raw,
                           "latency_s": prediction.latency_s, "completion_tokens": prediction.completion_tokens}
    if prediction.label_probabilities:
        row["label_probabilities"] = prediction.label_probabilities
    if prediction.error:
        row["error"] = prediction.error
    return row


def _describe_error(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DistilleryError) else f"{type(exc).__name__}: {exc}"


# ----- the job --------------------------------------------------------------------------------
def make_handler(config: ServiceConfig, client_factory: Callable[[str], Any] | None = None
                 ) -> Callable[[OperationContext, EvaluationJob], dict[str, Any]]:
    """The ``evaluation`` job handler, bound to the service configuration (the servicer module
    gives it the job read from the stored request)."""
    if client_factory is None:
        def client_factory(address: str) -> Any:
            from services.evaluator.generator_client import GeneratorClient

            return GeneratorClient(address, config.client_security)

    def handle(ctx: OperationContext, job: EvaluationJob) -> dict[str, Any]:
        test_path = ctx.store.local_path(job.test)  # a store artifact only, verified
        examples = load_test_examples(test_path, job.task, job.options.max_examples)
        resolve = model_resolver(ModelReferences.for_service(ctx.store, config))
        generator = config.peers.get("generator", "")
        answers = seed_outputs(ctx.store.local_path(job.seeds) if job.seeds is not None else None)

        def make_candidate(spec: CandidateSpec) -> Candidate:
            return build_candidate(spec, job.task, job.options, resolve=resolve, client_factory=client_factory,
                                   generator_endpoint=generator, seeds=job.seeds, device=config.device,
                                   seed_outputs=answers)

        judge = None
        if job.options.judge and generator:
            def judge(prompts: list[str]) -> list[Any]:
                client = client_factory(generator)
                try:
                    return client.choose(prompts, JUDGE_CHOICES, timeout=job.options.teacher_timeout_s)
                finally:
                    client.close()

        evaluation = Evaluation(job, examples, ctx.work_dir, make_candidate, ctx.progress, ctx.check_cancelled, judge)
        results = evaluation.predict_all()
        if not any(len(rows) == len(examples) for rows in results.values()):
            raise FailedPrecondition("no candidate could be evaluated: " + "; ".join(
                f"{name}: {error}" for name, error in evaluation.errors.items()))
        verdicts = evaluation.judge_all(results)
        ctx.progress(stage="writing report", force=True)
        report, merged = evaluation.build_report(results, verdicts)
        return write_outputs(ctx, report, merged)

    return handle


def write_outputs(ctx: OperationContext, report: dict[str, Any], merged: list[dict[str, Any]]) -> dict[str, Any]:
    """Plots, predictions, report.md and report.json into the store; the EvaluationResult dict."""
    out_dir = ctx.work_dir / "out"
    plot_paths = report_mod.write_plots(report, out_dir)
    plots = [ctx.store.put_file(ctx.output_key(p.name), p) for p in plot_paths]
    write_jsonl_atomic(out_dir / "predictions.jsonl", merged)
    predictions = ctx.store.put_file(ctx.output_key("predictions.jsonl"), out_dir / "predictions.jsonl")
    markdown = ctx.store.put_bytes(ctx.output_key("report.md"), report_mod.render_markdown(report).encode())
    report["artifacts"] = {"predictions": predictions.uri, "report_markdown": markdown.uri,
                           "plots": [p.uri for p in plots]}
    report_json = ctx.store.put_json(ctx.output_key("report.json"), report)
    return evaluation_result(report, {"report_json": report_json.to_dict(), "report_markdown": markdown.to_dict(),
                                      "predictions": predictions.to_dict(), "plots": [p.to_dict() for p in plots]})


def candidate_score(candidate: dict[str, Any]) -> dict[str, Any]:
    """A CandidateScore: the metrics and costs of a scored candidate; for one that failed only its
    name and error, so no default 0 can pass for a measured score."""
    if candidate.get("error"):
        return {"name": candidate["name"], "error": candidate["error"]}
    return {"name": candidate["name"], "metrics": candidate["metrics"],
            "latency_p50_ms": candidate["latency_p50_ms"], "latency_p95_ms": candidate["latency_p95_ms"],
            "tokens_per_second": candidate["tokens_per_second"], "malformed": candidate["malformed"]}


def evaluation_result(report: dict[str, Any], artifacts: dict[str, Any]) -> dict[str, Any]:
    """The EvaluationResult dict of a report. A failed candidate is in ``scores`` with its error
    and in ``failed_candidates``, so a quality gate can refuse to pass on a partial evaluation."""
    ratio = report.get("student_teacher_ratio")
    return {
        **artifacts,
        "scores": [candidate_score(c) for c in report["candidates"]],
        "primary_metric": report["primary_metric"],
        "student_teacher_ratio": float(ratio) if ratio is not None else 0.0,
        "ratio_note": report.get("ratio_note", "") if ratio is None else "",
        "comparisons": list(report.get("comparisons", [])),
        "failed_candidates": [c["name"] for c in report["candidates"] if c.get("error")],
    }
