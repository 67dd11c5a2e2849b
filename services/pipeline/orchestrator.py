"""Runs a DistillationJob through generate → validate → train (→ seed-only train) → evaluate →
export → deploy, resumably. grpc-free: it talks to the workers through ``Workers``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from services.common.artifacts import Artifact
from services.common.atomic import write_json_atomic
from services.common.enums import CandidateKind, ModelFormat, Quantization, quantization
from services.common.errors import Cancelled, DistilleryError, FailedPrecondition, InvalidArgument
from services.common.jobs import OperationContext
from services.common.jsonl import jsonl_bytes
from services.common.taskspec import TaskSpec
from services.pipeline.calls import (
    CandidateCall,
    EvaluationCall,
    ExportCall,
    GenerationCall,
    GenerationOutcome,
    LabelCall,
    LoadModelCall,
    ModelRef,
    Progress,
    StageCall,
    TrainingCall,
    ValidationCall,
)
from services.pipeline.review import ReviewDecisions, reviewed_training_rows
from services.pipeline.serving_settings import ServingSettings
from services.pipeline.stages import (
    FAILED,
    JOB_NEEDS_ATTENTION,
    RUNNING,
    SKIPPED,
    STAGES,
    SUCCEEDED,
    PipelineState,
    StageState,
    StateFile,
)
from services.pipeline.traces import TracesSettings, curate, relabel, split
from services.pipeline.workers import Workers

log = logging.getLogger(__name__)
# Inputs the export's parity check runs on: half seeds, the rest test inputs (serving reads 32 at most).
PARITY_INPUTS = 32

DEFAULT_TARGET_COUNT = 200
DEFAULT_QUALITY_GATE = 0.8
# Keys of the evaluation section that the pipeline itself reads; the rest goes to the evaluator.
PIPELINE_EVALUATION_KEYS = frozenset({"quality_gate", "seed_only_baseline", "seed_only_training",
                                      "seed_only_min_steps", "candidates"})
# The seed-only baseline is what a competent user gets without a teacher: all the seeds (no eval
# split carved out of 10–50 rows), trained until the loss stops falling. The recipe measured on
# this kind of machine (DESIGN.md): LoRA, lr 1e-3, 10% warm-up, ~15 passes over 30 seeds (60 steps)
# took the training loss from 2.4 to 0.002 and scored 0.79 / 0.91 on two 10-way intent tasks.
SEED_ONLY_TRAINING = {"eval_fraction": 0.0, "early_stopping_patience": 0, "learning_rate": 1e-3,
                      "warmup_ratio": 0.1, "schedule": "linear", "train_loss_patience": 3}
SEED_ONLY_MIN_STEPS = 60
# Rows per label (accepted synthetic rows + seeds) below which the job warns that a label is thin.
DEFAULT_MIN_ROWS_PER_LABEL = 5
CANDIDATE_NAMES = ("teacher", "student", "base-student", "seed-only-student")
RETRY_HINT = "fix the cause, then rerun the same `distillery run` command (or `distillery retry JOB`): " \
             "finished stages are not redone"


def deep_merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` over ``base``, mapping by mapping: overriding ``near_duplicate.threshold`` keeps the
    task's other ``near_duplicate`` settings."""
    merged = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merged_settings(spec: TaskSpec, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for section, values in (overrides or {}).items():
        if not isinstance(values, dict):
            raise InvalidArgument(f"override {section!r} must be a mapping of settings")
    return deep_merge({k: dict(v) for k, v in spec.settings.items()}, overrides or {})


def generation_request(spec: TaskSpec, settings: dict[str, dict[str, Any]],
                       inputs: dict[str, Artifact | None]) -> GenerationCall:
    """The generator's request. The merged ``generation`` section (task.yaml + ``--set`` + retune
    overrides) replaces the task's own, so keys without a request field of their own
    (``label_max_tokens``, ``batch_size``, shots, prices) reach the generator too."""
    gen = settings.get("generation", {})
    spec = replace(spec, settings={**spec.settings, "generation": dict(gen)})
    seeds = inputs["seeds"]
    if seeds is None:
        raise InvalidArgument("seeds are required")
    return GenerationCall(task=spec, seeds=seeds, context=inputs.get("context"),
                          target_count=int(gen.get("target_count", DEFAULT_TARGET_COUNT)),
                          temperature=float(gen.get("temperature", 0.8)), top_p=float(gen.get("top_p", 0.95)),
                          random_seed=int(gen.get("random_seed", 0)))


class DistillationRunner:
    """One job. ``run`` is called again after a pipeline restart and continues where it was."""

    def __init__(self, ctx: OperationContext, workers: Workers, spec: TaskSpec, inputs: dict[str, Artifact | None],
                 overrides: dict[str, Any], retune_of: PipelineState | None = None,
                 reuse: tuple[str, ...] = ("traces", "generate", "validate"), review: ReviewDecisions | None = None) -> None:
        self.ctx = ctx
        self.workers = workers
        self.spec = spec
        self.inputs = inputs
        self.settings = merged_settings(spec, overrides)
        self.serving = ServingSettings.from_section(self.settings.get("serving"))
        self.state_file = StateFile(ctx.work_dir / "state.json")
        state = self.state_file.load()
        if state is None:
            state = PipelineState.new(ctx.name, spec.name)
            if retune_of is not None:  # reuse the generated (and validated) data of another job
                for name in reuse:
                    src = retune_of.stage(name)
                    if name == "traces" and src.state != SUCCEEDED:  # the source had no traces
                        state.stage(name).state = SKIPPED
                        continue
                    if src.state != SUCCEEDED:
                        raise FailedPrecondition(f"job {retune_of.name} has no finished {name} stage to reuse")
                    state.stages[STAGES.index(name)] = StageState(**{**src.__dict__, "summary": {**src.summary,
                                                                                            "reused_from": retune_of.name}})
                if review is not None and not review.empty:  # what the source's reviewer decided, frozen now
                    state.review = {**review.to_dict(), "source": retune_of.name}
        self.state = state

    # ----- helpers ----------------------------------------------------------------------------
    def _save(self) -> None:
        self.state_file.save(self.state)

    def _artifact(self, stage: str, key: str) -> Artifact:
        artifact = self.state.stage(stage).artifacts.get(key)
        if not artifact:
            raise FailedPrecondition(f"stage {stage} recorded no {key} artifact")
        return Artifact.from_dict(artifact)

    def _input(self, name: str) -> Artifact:
        artifact = self.inputs.get(name)
        if artifact is None:
            raise InvalidArgument(f"{name} is required (an ArtifactRef to {name}.jsonl in the store)")
        return artifact

    def _request_id(self, stage: str) -> str:
        return f"{self.ctx.record.short_id}:{stage}"

    def _prefix(self, stage: str) -> str:
        return f"jobs/{self.ctx.record.short_id}/{stage}"

    def _run_stage(self, stage: str, call: StageCall) -> Any:
        state = self.state.stage(stage)
        state.state, state.error = RUNNING, ""
        self.state.state = RUNNING
        self._save()
        index = STAGES.index(stage)

        def on_progress(meta: Progress) -> None:
            counters = {f"{stage}.{k}": float(v) for k, v in meta.counters.items()}
            counters.update({"stage_index": float(index), "stage_done": float(meta.done),
                             "stage_total": float(meta.total)})
            self.ctx.progress(stage=stage, done=index, total=len(STAGES), unit="stages",
                              message=f"{stage}: {meta.stage} {meta.done}/{meta.total} {meta.unit}".strip(),
                              counters=counters)

        call = replace(call, request_id=self._request_id(stage), output_prefix=self._prefix(stage))
        operation, result = self.workers.run(stage, call, on_progress, self.ctx.cancelled)
        state.operation = operation
        return result

    def _warn(self, text: str) -> None:
        """A warning the CLI prints and GetJob returns (kept once; a resumed stage may repeat it)."""
        if text not in self.state.warnings:
            self.state.warnings.append(text)
            log.warning("%s: %s", self.state.name, text)

    def _finish(self, stage: str, artifacts: dict[str, Artifact | None], summary: dict[str, Any]) -> None:
        state = self.state.stage(stage)
        state.state = SUCCEEDED
        state.artifacts = {k: v.to_dict() for k, v in artifacts.items() if v is not None}
        state.summary = summary
        self._save()
        self.ctx.progress(stage=stage, done=STAGES.index(stage) + 1, total=len(STAGES), unit="stages",
                          message=f"{stage} done", force=True)

    # ----- the stages -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._use_traces()
        steps = [("traces", self.traces), ("generate", self.generate), ("validate", self.validate), ("train", self.train),
                 ("train_seed_only", self.train_seed_only), ("evaluate", self.evaluate), ("export", self.export),
                 ("deploy", self.deploy)]
        for name, step in steps:
            stage = self.state.stage(name)
            if stage.state in (SUCCEEDED, SKIPPED):
                continue
            try:
                self.ctx.check_cancelled()
                step()
            except Cancelled:
                raise
            except DistilleryError as exc:
                stage.state, stage.error = FAILED, str(exc)
                self.state.state = FAILED
                self.state.message = f"stage {name} failed: {exc}. To retry: {RETRY_HINT}"
                self._save()
                raise type(exc)(self.state.message) from None
        self.state.state, self.state.message = self.verdict()
        self._save()
        return self.result()

    def verdict(self) -> tuple[str, str]:
        """SUCCEEDED only when every candidate was scored and the served student clears the quality
        gate; a candidate that failed (or a ratio that could not be computed) is NEEDS_ATTENTION,
        never a pass."""
        evaluate = self.state.stage("evaluate")
        if evaluate.state == SKIPPED:
            return SUCCEEDED, "done"
        scores = evaluate.summary.get("scores") or []
        failed = sorted({s.get("name", "?") for s in scores if s.get("error")}
                        | set(evaluate.summary.get("failed_candidates") or []))
        served = self.state.deployed_student or "student"
        ratio = self.state.student_teacher_ratio
        gate = float(self.settings.get("evaluation", {}).get("quality_gate", DEFAULT_QUALITY_GATE))
        note = f" ({self.state.deployed_note})" if self.state.deployed_note else ""
        if failed:
            return JOB_NEEDS_ATTENTION, (f"evaluation failed for {', '.join(failed)}: the quality gate cannot pass "
                                         "on a candidate that was not scored; see the report" + note)
        if not any(s.get("name") == "teacher" for s in scores):  # evaluation.candidates left it out
            return SUCCEEDED, f"done: the teacher was not scored, so the quality gate was not applied{note}"
        if not ratio:
            return JOB_NEEDS_ATTENTION, ("no student/teacher ratio could be computed (the teacher scored 0 or was "
                                         "not evaluated), so the quality gate did not pass; see the report" + note)
        if ratio < gate:
            return JOB_NEEDS_ATTENTION, (f"{served}/teacher ratio {ratio:.2f} is below the quality gate {gate:.2f}: "
                                         "see the report; try more data (generation.target_count), other validation "
                                         "settings or a larger student (`distillery retune`)" + note)
        return SUCCEEDED, f"done: {served}/teacher ratio {ratio:.2f}" + note

    def result(self) -> dict[str, Any]:
        from services.pipeline.jobs_view import job_to_dict

        return {"job": job_to_dict(self.state)}

    def _use_traces(self) -> None:
        """After the traces stage, its seeds (the task's and the traces') and test set are the job's."""
        stage = self.state.stage("traces")
        if stage.state == SUCCEEDED:
            self.inputs = {**self.inputs, **{k: Artifact.from_dict(v) for k, v in stage.artifacts.items()
                                             if k in ("seeds", "test")}}

    def traces(self) -> None:
        """Production traces → seeds (and the test set without a test.jsonl): curated, relabelled by
        the teacher (a committee where it disagrees with itself), split without leakage. Runs in the
        pipeline; only the relabelling goes to the generator (its Label RPC)."""
        from services.common.taskspec import Example
        from services.common.traces import read_traces

        source = self.inputs.get("traces")
        stage = self.state.stage("traces")
        if source is None:
            stage.state = SKIPPED
            self._save()
            return
        stage.state, stage.error = RUNNING, ""
        self.state.state = RUNNING
        self._save()
        settings = TracesSettings.from_section(self.settings.get("traces"))
        traces = read_traces(self.spec, self.ctx.store.local_path(source))
        seeds = [Example.from_dict(r) for r in self._rows_of("seeds")]
        test = [Example.from_dict(r) for r in self._rows_of("test")]
        kept, report = curate(self.spec, traces, seeds, test, settings)
        seeds_ref = self.inputs.get("seeds")

        cache = self.ctx.work_dir / "traces"

        def label(rows: list[Example], temperature: float, random_seed: int) -> list[str]:
            # Each teacher pass is kept (atomically) under the job's work directory, keyed by what
            # it answered: a pipeline killed mid-stage redoes only the passes it had not finished.
            key = hashlib.sha256(json.dumps([temperature, random_seed, [[r.input, r.context] for r in rows]])
                                 .encode()).hexdigest()[:24]
            path = cache / f"pass-{key}.json"
            if path.exists():
                answers = json.loads(path.read_text())
                if isinstance(answers, list) and len(answers) == len(rows):
                    return [str(a) for a in answers]
            answers = self.workers.label(LabelCall(task=self.spec, inputs=rows, seeds=seeds_ref,
                                                   temperature=temperature, random_seed=random_seed))
            cache.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, answers)
            return answers

        def progress(done: int, total: int) -> None:
            self.ctx.progress(stage="traces", done=0, total=len(STAGES), unit="stages",
                              message=f"traces: teacher pass {done}/{total} over {len(kept)} traces",
                              counters={"stage_index": 0.0, "stage_done": float(done), "stage_total": float(total)})

        labelled = relabel(self.spec, kept, label, settings, report, progress)
        split(self.spec, labelled, len(seeds), bool(test), settings, report)
        prefix = self._prefix("traces")
        artifacts = {"seeds": self.ctx.store.put_bytes(f"{prefix}/seeds.jsonl", jsonl_bytes(
            [s.to_dict() for s in seeds] + [s.to_dict() for s in report.seeds]))}
        if not test:
            artifacts["test"] = self.ctx.store.put_bytes(f"{prefix}/test.jsonl",
                                                         jsonl_bytes([t.to_dict() for t in report.test]))
        artifacts["report"] = self.ctx.store.put_json(f"{prefix}/report.json",
                                                      {**report.summary(), "dropped_rows": report.dropped})
        summary = report.summary()
        if not test:
            self._warn(f"the test set is {len(report.test)} traces held out and labelled by the teacher: scores "
                       "measure agreement with the teacher, not accuracy against human labels (give a test.jsonl "
                       "for that)")
        self._finish("traces", artifacts, summary)
        self._use_traces()

    def _rows_of(self, name: str) -> list[dict[str, Any]]:
        from services.common.jsonl import iter_jsonl

        artifact = self.inputs.get(name)
        if artifact is None:
            return []
        path = self.ctx.store.local_path(artifact)
        return [item.value for item in iter_jsonl(path) if item.error is None and isinstance(item.value, dict)]

    def generate(self) -> None:
        call = generation_request(self.spec, self.settings, self.inputs)
        shards = int(self.settings.get("generation", {}).get("shards", 1) or 1)
        result = self._generate_sharded(call, shards) if shards > 1 else self._run_stage("generate", call)
        summary: dict[str, Any] = {
            "generated": result.generated, "rejected_count": result.rejected_count,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "estimated_cost_usd": result.estimated_cost_usd, "seconds": result.seconds, "teacher": result.teacher,
            "teacher_seed_accuracy": result.teacher_seed_accuracy, "teacher_seed_count": result.teacher_seed_count,
            "label_source": result.label_source, "label_source_reason": result.label_source_reason,
            "shortfall": result.shortfall}
        if shards > 1:
            summary["shards"] = shards
        if summary.get("shortfall"):
            self._warn(f"generation ended short: {summary['shortfall']}; the student trains on the rows there "
                       "are and the seeds")
        if summary.get("label_source") == "target":
            # The generator's reason already says what was measured and what was done: say it once.
            self._warn(f"weak teacher: {summary.get('label_source_reason') or 'rows keep the label they were generated for'}")
        self._finish("generate", {"examples": result.examples, "rejected": result.rejected}, summary)

    def _generate_sharded(self, call: GenerationCall, shards: int) -> GenerationOutcome:
        """generation.shards > 1: the rows split into that many generation operations (replicas on
        a shared store each claim one and write in parallel), merged in shard order. Shard k's
        candidates start at k × max_candidates(target), so shards never share a candidate index
        and the merged rows are in global index order. Each shard has its own request_id: a
        pipeline restarted mid-stage gets the same operations back, and a finished shard is not
        redone."""
        from concurrent.futures import ThreadPoolExecutor
        from threading import Lock

        stage = self.state.stage("generate")
        stage.state, stage.error = RUNNING, ""
        self.state.state = RUNNING
        self._save()
        base, extra = divmod(call.target_count, shards)
        targets = [base + (1 if k < extra else 0) for k in range(shards)]
        step = 10 * call.target_count + 100  # the generator's candidate bound for the whole target
        calls = [replace(call, target_count=target, index_offset=k * step,
                         request_id=f"{self._request_id('generate')}:shard-{k}",
                         output_prefix=f"{self._prefix('generate')}/shard-{k}")
                 for k, target in enumerate(targets) if target > 0]
        done = [0] * len(calls)
        lock = Lock()

        def on_progress(k: int) -> Callable[[Progress], None]:
            def report(meta: Progress) -> None:
                with lock:
                    done[k] = meta.done
                    total = sum(done)
                self.ctx.progress(stage="generate", done=STAGES.index("generate"), total=len(STAGES), unit="stages",
                                  message=f"generate: {len(calls)} shards {total}/{call.target_count} examples",
                                  counters={"stage_index": float(STAGES.index("generate")),
                                            "stage_done": float(total), "stage_total": float(call.target_count)})
            return report

        with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="generate-shard") as pool:
            futures = [pool.submit(self.workers.run, "generate", c, on_progress(k), self.ctx.cancelled)
                       for k, c in enumerate(calls)]
            outcomes = [future.result() for future in futures]
        stage.operation = ",".join(name for name, _ in outcomes)
        results = [outcome for _, outcome in outcomes]
        prefix = self._prefix("generate")
        merged = {name: self.ctx.store.put_bytes(f"{prefix}/{name}.jsonl", b"".join(
            self.ctx.store.read_bytes(getattr(r, name)) for r in results if getattr(r, name) is not None))
            for name in ("examples", "rejected")}
        sources = {r.label_source for r in results}
        if len(sources) > 1:
            self._warn(f"the generation shards chose different label sources ({', '.join(sorted(sources))}): each "
                       "shard's rows follow its own choice (see each row's metadata.label_source)")
        first = results[0]
        return GenerationOutcome(
            examples=merged["examples"], rejected=merged["rejected"], generated=sum(r.generated for r in results),
            rejected_count=sum(r.rejected_count for r in results), prompt_tokens=sum(r.prompt_tokens for r in results),
            completion_tokens=sum(r.completion_tokens for r in results),
            estimated_cost_usd=sum(r.estimated_cost_usd for r in results), seconds=max(r.seconds for r in results),
            teacher=first.teacher, teacher_seed_accuracy=first.teacher_seed_accuracy,
            teacher_seed_count=first.teacher_seed_count, label_source=first.label_source,
            label_source_reason=first.label_source_reason,
            shortfall="; ".join(f"shard {k}: {r.shortfall}" for k, r in enumerate(results) if r.shortfall))

    def validate(self) -> None:
        call = ValidationCall(task=self.spec, examples=self._artifact("generate", "examples"),
                              seeds=self._input("seeds"), test=self._input("test"),
                              config=dict(self.settings.get("validation", {})))
        result = self._run_stage("validate", call)
        summary: dict[str, Any] = {"read": result.read, "accepted_count": result.accepted_count,
                                   "rejected_count": result.rejected_count,
                                   "rejected_by_reason": dict(result.rejected_by_reason)}
        summary["rows_per_label"] = self._rows_per_label(result.report)
        self._check_label_coverage(summary["rows_per_label"])
        self._finish("validate", {"accepted": result.accepted, "rejected": result.rejected, "report": result.report},
                     summary)

    def _rows_per_label(self, report_ref: Artifact | None) -> dict[str, dict[str, int]]:
        """Classification: per label, the accepted synthetic rows (the validator's report) and the
        seeds — what the student will train on. Empty for other task types."""
        if self.spec.type != "classification":
            return {}
        accepted: dict[str, int] = {}
        if report_ref is not None:
            try:
                per_label = self.ctx.store.read_json(report_ref).get("labels") or {}
            except Exception as exc:  # noqa: BLE001 - the counts are advisory; the stage itself passed
                log.warning("could not read the validation report for label counts: %s", exc)
                per_label = {}
            accepted = {str(k): int((v or {}).get("accepted", 0)) for k, v in per_label.items()}
        seeds: dict[str, int] = {}
        for row in self._seed_rows():
            seeds[str(row.get("output", "")).strip()] = seeds.get(str(row.get("output", "")).strip(), 0) + 1
        return {label: {"accepted": accepted.get(label, 0), "seeds": seeds.get(label, 0)} for label in self.spec.labels}

    def _seed_rows(self) -> list[dict[str, Any]]:
        return self._rows_of("seeds")

    def _check_label_coverage(self, rows_per_label: dict[str, dict[str, int]]) -> None:
        """Every label needs training rows: a label the data lacks is a student that never predicts
        it. Warn (CLI, GetJob) when a label is below the floor; it is an error only when there is
        nothing to train on at all."""
        floor = int(self.settings.get("validation", {}).get("label_floor", {}).get("min_rows", DEFAULT_MIN_ROWS_PER_LABEL)
                    if isinstance(self.settings.get("validation", {}).get("label_floor"), dict)
                    else DEFAULT_MIN_ROWS_PER_LABEL)
        for label, counts in rows_per_label.items():
            total = counts["accepted"] + counts["seeds"]
            if total == 0:
                self._warn(f"label {label!r} has no training rows (0 accepted, 0 seeds): the student will never "
                           "predict it; add seeds for it or raise generation.target_count")
            elif total < floor:
                self._warn(f"label {label!r} is thin: {counts['accepted']} accepted row(s) + {counts['seeds']} seed(s) "
                           f"< {floor}; its scores will be noisy (add seeds, or raise generation.target_count)")

    def _train(self, stage: str, data: Artifact, config: dict[str, Any], seeds: Artifact | None = None) -> None:
        call = TrainingCall(task=self.spec, train=data, student=ModelRef(self.spec.student), config=config, seeds=seeds)
        result = self._run_stage(stage, call)
        review = self.state.stage(stage).summary.get("review")
        summary = {"steps": result.steps, "final_train_loss": result.final_train_loss,
                   "final_eval_loss": result.final_eval_loss, "seconds": result.seconds, "device": result.device,
                   "config": config, **({"review": review} if review else {})}
        self._finish(stage, {"adapter": result.adapter, "merged": result.merged, "metrics": result.metrics}, summary)

    def train(self) -> None:
        """The student learns from the accepted synthetic rows and the seeds together (the seeds
        are the only gold labels; training.seed_share keeps their share of the updates). A retune
        of a reviewed job trains on the rows as the reviewer left them."""
        self._train("train", self._training_data(), dict(self.settings.get("training", {})),
                    seeds=self._input("seeds"))

    def _training_data(self) -> Artifact:
        accepted = self._artifact("validate", "accepted")
        decisions = ReviewDecisions.from_dict(self.state.review, "review snapshot") if self.state.review else None
        if decisions is None or not decisions.rows:
            return accepted
        reviewed = reviewed_training_rows(self.ctx.store, self.state, decisions)
        artifact = self.ctx.store.put_bytes(f"jobs/{self.ctx.record.short_id}/review/accepted.jsonl",
                                           reviewed.jsonl())
        self.state.stage("train").summary["review"] = {
            "source": decisions.source, "rows": len(reviewed.rows), "rejected_by_hand": reviewed.rejected_by_hand,
            "accepted_by_hand": reviewed.accepted_by_hand, "test_approved": decisions.test_approved,
            "data": artifact.to_dict()}
        self._save()
        return artifact

    def seed_only_config(self) -> dict[str, Any]:
        """The fair baseline's settings: the task's training section (student, LoRA shape, sequence
        length), then the seeds-only recipe, then ``evaluation.seed_only_training`` overrides; at
        least as many optimizer steps as the trained student took (and ≥ seed_only_min_steps),
        stopping earlier only when the training loss stops falling."""
        evaluation = self.settings.get("evaluation", {})
        overrides = evaluation.get("seed_only_training") or {}
        if not isinstance(overrides, dict):
            raise InvalidArgument("evaluation.seed_only_training must be a mapping of training settings")
        config = {**dict(self.settings.get("training", {})), **SEED_ONLY_TRAINING, **overrides}
        trained_steps = int(self.state.stage("train").summary.get("steps") or 0)
        min_steps = int(evaluation.get("seed_only_min_steps", SEED_ONLY_MIN_STEPS))
        config.setdefault("max_steps", max(trained_steps, min_steps))
        return config

    def train_seed_only(self) -> None:
        if not self.settings.get("evaluation", {}).get("seed_only_baseline", True):
            stage = self.state.stage("train_seed_only")
            stage.state, stage.summary = SKIPPED, {"reason": "evaluation.seed_only_baseline is off"}
            self._save()
            return
        self._train("train_seed_only", self._input("seeds"), self.seed_only_config())

    def _candidates(self) -> list[CandidateCall]:
        """Teacher, trained student, base student and (when trained) the seed-only student; the
        ``evaluation.candidates`` setting narrows that down (a retune that only compares
        students need not score the teacher again)."""
        merged = self._artifact("train", "merged")
        candidates = [
            CandidateCall("teacher", CandidateKind.TEACHER, ModelRef(self.spec.teacher)),
            CandidateCall("student", CandidateKind.STUDENT, ModelRef(merged.uri, ModelFormat.HF)),
            CandidateCall("base-student", CandidateKind.STUDENT, ModelRef(self.spec.student)),
        ]
        if self.state.stage("train_seed_only").state == SUCCEEDED:
            seed_only = self._artifact("train_seed_only", "merged")
            candidates.append(CandidateCall("seed-only-student", CandidateKind.STUDENT,
                                            ModelRef(seed_only.uri, ModelFormat.HF)))
        wanted = self.settings.get("evaluation", {}).get("candidates")
        if wanted is None:
            return candidates
        if isinstance(wanted, str):
            wanted = [wanted]
        unknown = sorted(set(wanted) - set(CANDIDATE_NAMES))
        if unknown or not wanted or "student" not in wanted:
            raise InvalidArgument(f"evaluation.candidates {list(wanted)!r}: a list of {', '.join(CANDIDATE_NAMES)} "
                                  "that includes \"student\"" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        return [c for c in candidates if c.name in wanted]

    def evaluate(self) -> None:
        candidates = self._candidates()
        call = EvaluationCall(task=self.spec, test=self._input("test"), seeds=self._input("seeds"),
                              candidates=candidates,
                              config={k: v for k, v in self.settings.get("evaluation", {}).items()
                                      if k not in PIPELINE_EVALUATION_KEYS})
        result = self._run_stage("evaluate", call)
        self.state.student_teacher_ratio = result.student_teacher_ratio
        self.state.report = result.report_markdown.to_dict() if result.report_markdown else {}
        summary = {"scores": [s.to_dict() for s in result.scores], "primary_metric": result.primary_metric,
                   "student_teacher_ratio": self.state.student_teacher_ratio,
                   "comparisons": [c.to_dict() for c in result.comparisons],
                   "failed_candidates": list(result.failed_candidates)}
        self._choose_student(summary)
        self._finish("evaluate", {"report_json": result.report_json, "report_markdown": result.report_markdown,
                                  "predictions": result.predictions}, summary)

    def _choose_student(self, summary: dict[str, Any]) -> None:
        """Deploy the better student: the seed-only one when it beat the trained one (its paired
        95% interval is above 0), with the ratio recomputed for it and the reason said plainly."""
        self.state.deployed_student, self.state.deployed_note = "student", ""
        comparison = next((c for c in summary["comparisons"]
                           if {c.get("a"), c.get("b")} == {"student", "seed-only-student"}), None)
        if comparison is None:
            return
        delta, low, high = (float(comparison.get(k, 0.0) or 0.0) for k in ("delta", "low", "high"))
        if comparison.get("a") == "seed-only-student":  # orient as student − seed-only
            delta, low, high = -delta, -high, -low
        metric = summary.get("primary_metric") or "score"
        if high < 0:
            self.state.deployed_student = "seed-only-student"
            self.state.deployed_note = (f"the seed-only student beat the student trained on synthetic data by "
                                        f"{-delta:+.3f} {metric} (95% CI {-high:+.3f} to {-low:+.3f}): the seed-only "
                                        "student is deployed; the synthetic data did not help this task")
            self._warn(self.state.deployed_note)
            scores = {s.get("name"): (s.get("metrics") or {}).get(metric, 0.0) for s in summary["scores"]}
            teacher, seed_only = float(scores.get("teacher") or 0.0), float(scores.get("seed-only-student") or 0.0)
            if teacher > 0:
                self.state.student_teacher_ratio = seed_only / teacher
                summary["student_teacher_ratio"] = self.state.student_teacher_ratio
        elif low <= 0:
            self.state.deployed_note = (f"the trained student and the seed-only student are not clearly apart "
                                        f"({delta:+.3f} {metric}, 95% CI {low:+.3f} to {high:+.3f})")

    def _deployed_training_stage(self) -> str:
        return "train_seed_only" if self.state.deployed_student == "seed-only-student" else "train"

    def _skip_unless_deploying(self, name: str) -> bool:
        """``serving.deploy: false`` ends the job after evaluation (e.g. a sweep of retunes that
        only compares scores)."""
        if not self.serving.deploy:
            stage = self.state.stage(name)
            stage.state, stage.summary = SKIPPED, {"reason": "serving.deploy is off"}
            self._save()
            return True
        return False

    def export(self) -> None:
        if self._skip_unless_deploying("export"):
            return
        quantizations = [quantization(q) for q in self.serving.quantizations]
        trained = self._deployed_training_stage()
        adapter = self.state.stage(trained).artifacts.get("adapter")  # none after full fine-tuning
        call = ExportCall(task=self.spec, model=ModelRef(self._artifact(trained, "merged").uri, ModelFormat.HF),
                          quantizations=quantizations, min_parity=self.serving.min_parity,
                          model_name=self.spec.name, model_version=self.ctx.record.short_id,
                          adapter=ModelRef(adapter["uri"], ModelFormat.PEFT_ADAPTER) if adapter else None,
                          parity_inputs=self._parity_inputs(), gguf=list(self.serving.gguf))
        result = self._run_stage("export", call)
        for missing in (g for g in result.gguf if g.error):
            self._warn(f"the bundle has no {missing.quantization} GGUF: {missing.error}")
        self._finish("export", {"bundle": result.bundle, "model_card": result.model_card},
                     {"variants": [v.to_dict() for v in result.variants], "model_name": result.model_name,
                      "model_version": result.model_version, "gguf": [g.to_dict() for g in result.gguf]})

    def _parity_inputs(self) -> Artifact | None:
        """The task's own inputs (seeds, then test inputs; PARITY_INPUTS in all) for the export's
        parity check: a quantized variant must answer what the student answers on this task, not
        on generic prompts. Only inputs travel (no label is used)."""
        rows = self._input_rows("seeds")[:PARITY_INPUTS // 2]
        rows += self._input_rows("test")[:PARITY_INPUTS - len(rows)]
        if not rows:
            return None
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        return self.ctx.store.put_bytes(f"{self._prefix('export')}/parity_inputs.jsonl", data)

    def _input_rows(self, name: str) -> list[dict[str, str]]:
        ref = self.inputs.get(name)
        if ref is None:
            return []
        rows = []
        for line in self.ctx.store.read_bytes(ref).decode("utf-8").splitlines():
            row = json.loads(line) if line.strip() else None
            if isinstance(row, dict) and row.get("input"):
                text = row["input"] if isinstance(row["input"], str) else json.dumps(row["input"])
                rows.append({"input": text, "context": str(row.get("context") or "")})
        return rows

    def _served_variant(self, wanted: str) -> str:
        """The variant to serve: the one asked for if the export accepted it (its parity check
        passed), else the most compressed accepted one, else fp32."""
        variants = self.state.stage("export").summary.get("variants", [])
        accepted = [v.get("quantization", "") for v in variants if v.get("accepted")]
        wanted_name = quantization(wanted)
        for name in (wanted_name, Quantization.INT8, Quantization.INT4, Quantization.NONE):
            if name in accepted:
                if name != wanted_name:
                    log.info("serving %s instead of %s: the export refused %s (parity below serving.min_parity)",
                             name, wanted_name, wanted_name)
                return name
        return Quantization.NONE

    def deploy(self) -> None:
        if self._skip_unless_deploying("deploy"):
            return
        stage = self.state.stage("deploy")
        stage.state = RUNNING
        self._save()
        served = self._served_variant(self.serving.serve)
        loaded = self.workers.load_model(LoadModelCall(name=self.spec.name, version=self.ctx.record.short_id,
                                                       bundle=self._artifact("export", "bundle"),
                                                       quantization=served, task=self.spec))
        self.state.served_model = f"{self.spec.name}:{self.ctx.record.short_id}"
        self._finish("deploy", {}, {"model": loaded.to_dict()})
