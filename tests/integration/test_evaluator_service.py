"""The evaluator through real gRPC: a real evaluator server (start_service on a free port), the
real base student (SmolLM2-135M-Instruct from the catalog) on a tiny sentiment task, and the real
teacher through a real generator process (vLLM environment) when that environment is present."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import grpc
import pytest
from distillery.v1 import common_pb2, evaluator_pb2, evaluator_pb2_grpc

from services.common.artifacts import ArtifactStore
from services.common.client import OperationFailed, OperationsClient, open_channel
from services.common.config import ServiceConfig
from services.common.convert import struct_from, task_to_proto
from services.common.errors import Cancelled
from services.common.references import ModelReferences
from services.common.runtime import start_service
from services.common.taskspec import TaskSpec
from services.evaluator.candidates import CandidateSpec, EvalOptions, build_candidate, model_resolver
from services.evaluator.handler import Evaluation, EvaluationJob, load_test_examples
from services.evaluator.servicer import RESULT_TYPES, build
from tests.helpers.services import free_port, start_service_process, vllm_python

STUDENT = "smollm2-135m-instruct"
SPEC = TaskSpec(name="sentiment", type="classification",
                description="Classify the sentiment of a short movie review.", labels=["positive", "negative"])
TEST_ROWS = [
    ("I loved this film, the acting was wonderful.", "positive"),
    ("Terrible plot and boring characters.", "negative"),
    ("A delightful, charming story for the whole family.", "positive"),
    ("I want my money back. Awful.", "negative"),
    ("Great soundtrack and a moving ending.", "positive"),
    ("The worst movie I have seen this year.", "negative"),
    ("Brilliant direction; I would watch it again.", "positive"),
    ("Dull, slow and far too long.", "negative"),
    ("A joy from start to finish.", "positive"),
    ("The dialogue was painful to sit through.", "negative"),
]
SEED_ROWS = [
    ("An instant classic, beautifully shot.", "positive"), ("I fell asleep halfway through.", "negative"),
    ("Funny, warm and clever.", "positive"), ("A complete waste of two hours.", "negative"),
    ("The cast is superb.", "positive"), ("Predictable and lazy writing.", "negative"),
    ("I smiled the whole time.", "positive"), ("The effects looked cheap.", "negative"),
    ("Heartfelt and honest.", "positive"), ("Nothing in it works.", "negative"),
]


def _jsonl(rows: list[tuple[str, str]]) -> bytes:
    return "".join(json.dumps({"input": text, "output": label}) + "\n" for text, label in rows).encode()


def _ref(artifact) -> common_pb2.ArtifactRef:
    return common_pb2.ArtifactRef(uri=artifact.uri, sha256=artifact.sha256, size=artifact.size)


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):
    os.environ.setdefault("DISTILLERY_EVALUATOR_THREADS", "1")  # 2 busy cores: one thread is faster
    home = tmp_path_factory.mktemp("evaluator")
    config = ServiceConfig(service="evaluator", port=free_port(), metrics_port=-1, home=home,
                           model_cache=model_cache, peers={"generator": f"127.0.0.1:{free_port()}"},
                           # the tests' own checkpoints live under pytest's temporary root
                           model_roots=(tmp_path_factory.getbasetemp().resolve(),))
    server, ctx = start_service(config, build, RESULT_TYPES)
    store = ArtifactStore(config.store_url)
    channel = open_channel(config.address)
    yield {"config": config, "ctx": ctx, "store": store, "channel": channel,
           "stub": evaluator_pb2_grpc.EvaluatorServiceStub(channel), "ops": OperationsClient(channel),
           "test": store.put_bytes("inputs/test.jsonl", _jsonl(TEST_ROWS)),
           "seeds": store.put_bytes("inputs/seeds.jsonl", _jsonl(SEED_ROWS))}
    channel.close()
    server.stop(0)


def _evaluate(ev: dict, candidates: list[evaluator_pb2.Candidate], config: dict | None = None,
              timeout: float = 900, spec: TaskSpec = SPEC, test=None) -> evaluator_pb2.EvaluationResult:
    request = evaluator_pb2.StartEvaluationRequest(task=task_to_proto(spec), test=_ref(test or ev["test"]),
                                                   seeds=_ref(ev["seeds"]), candidates=candidates,
                                                   config=struct_from(config or {}))
    operation = ev["stub"].StartEvaluation(request)
    return OperationsClient.result(ev["ops"].wait(operation.name, timeout=timeout), evaluator_pb2.EvaluationResult)


def _student(name: str = "base-student") -> evaluator_pb2.Candidate:
    return evaluator_pb2.Candidate(name=name, kind=evaluator_pb2.CANDIDATE_KIND_STUDENT,
                                   model=common_pb2.ModelRef(uri=STUDENT))


@pytest.mark.slow
def test_missing_candidate_path_is_refused_before_a_job_is_queued(evaluator: dict, tmp_path: Path) -> None:
    missing = evaluator_pb2.Candidate(name="missing-student", kind=evaluator_pb2.CANDIDATE_KIND_STUDENT,
                                      model=common_pb2.ModelRef(uri=str(tmp_path / "nothing-here")))
    with pytest.raises(grpc.RpcError) as refused:
        _evaluate(evaluator, [_student(), missing])
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert "candidates[1] (missing-student): model.uri" in refused.value.details()


def test_base_student_and_a_broken_candidate(evaluator: dict, tmp_path: Path) -> None:
    (tmp_path / "no-such-model").mkdir()  # there, but no model in it: the candidate fails to load
    broken = evaluator_pb2.Candidate(name="missing-student", kind=evaluator_pb2.CANDIDATE_KIND_STUDENT,
                                     model=common_pb2.ModelRef(uri=str(tmp_path / "no-such-model")))
    result = _evaluate(evaluator, [_student(), broken])
    store: ArtifactStore = evaluator["store"]

    assert result.primary_metric == "accuracy"
    assert result.student_teacher_ratio == 0.0  # no teacher, and the trained student failed
    assert result.ratio_note.startswith("missing-student failed: ")
    score, missing = result.scores  # the broken candidate is reported with its error, not scored
    assert score.name == "base-student" and not score.error
    assert missing.name == "missing-student" and "no-such-model" in missing.error and not missing.metrics
    assert list(result.failed_candidates) == ["missing-student"]
    assert not result.comparisons  # nothing scored to compare the base student with
    assert 0.0 <= score.metrics["accuracy"] <= 1.0 and "macro_f1" in score.metrics
    assert score.malformed == 0  # constrained: the student's answer is always a label
    assert score.latency_p50_ms > 0 and score.latency_p95_ms >= score.latency_p50_ms
    assert score.tokens_per_second > 0

    report = json.loads(store.read_bytes(result.report_json.uri))
    by_name = {c["name"]: c for c in report["candidates"]}
    assert "no-such-model" in by_name["missing-student"]["error"]
    assert by_name["base-student"]["decoding"].startswith("constrained")
    assert report["student_teacher_ratio"] is None

    rows = [json.loads(line) for line in store.read_bytes(result.predictions.uri).decode().splitlines()]
    assert len(rows) == len(TEST_ROWS)
    assert all(r["prediction"] in SPEC.labels and set(r["label_probabilities"]) == set(SPEC.labels) for r in rows)
    accuracy = sum(r["prediction"] == r["gold"] for r in rows) / len(rows)
    assert score.metrics["accuracy"] == pytest.approx(accuracy)

    markdown = store.read_bytes(result.report_markdown.uri).decode()
    assert "| base-student " in markdown and "missing-student" in markdown and "![scores](scores.png)" in markdown
    names = sorted(Path(p.uri).name for p in result.plots)
    assert names == ["confusion-base-student.png", "scores.png"]
    for plot in result.plots:
        assert store.read_bytes(plot.uri)[:4] == b"\x89PNG"


def test_bad_requests_are_refused(evaluator: dict) -> None:
    with pytest.raises(grpc.RpcError) as info:
        evaluator["stub"].StartEvaluation(evaluator_pb2.StartEvaluationRequest(
            task=task_to_proto(SPEC), test=_ref(evaluator["test"])))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "candidates is empty" in info.value.details()
    bad = evaluator["store"].put_bytes("inputs/bad-test.jsonl",
                                       b'{"input": "fine", "output": "positive"}\n{"input": "meh", "output": "meh"}\n')
    request = evaluator_pb2.StartEvaluationRequest(task=task_to_proto(SPEC), test=_ref(bad), candidates=[_student()])
    operation = evaluator["stub"].StartEvaluation(request)
    with pytest.raises(OperationFailed) as failed:
        OperationsClient.result(evaluator["ops"].wait(operation.name, timeout=120), evaluator_pb2.EvaluationResult)
    assert failed.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert 'test.jsonl:2: output "meh" is not one of the labels' in str(failed.value)


@pytest.mark.slow
def test_restart_resumes_where_predictions_stopped(evaluator: dict, tmp_path: Path) -> None:
    """Stop after 2 of 4 examples (as a crash or cancel would), then run again on the same work
    directory: the first answers are kept as written, only the rest is predicted."""
    config: ServiceConfig = evaluator["config"]
    store: ArtifactStore = evaluator["store"]
    options = EvalOptions(max_examples=4)
    job = EvaluationJob(SPEC, evaluator["test"], None, [CandidateSpec("base-student", "student", STUDENT)], options)
    examples = load_test_examples(store.local_path(evaluator["test"]), SPEC, options.max_examples)
    resolve = model_resolver(ModelReferences(store, Path(config.model_cache)))

    def make(spec: CandidateSpec):
        return build_candidate(spec, SPEC, options, resolve=resolve, client_factory=None, generator_endpoint="")

    seen: list[dict] = []

    def stop_after_two() -> None:
        written = sum(len(p.read_text().splitlines()) for p in (tmp_path / "predictions").glob("*.jsonl"))
        if written >= 2:
            raise Cancelled("stopped for the test")

    with pytest.raises(Cancelled):
        Evaluation(job, examples, tmp_path, make, check_cancelled=stop_after_two).predict_all()
    (path,) = (tmp_path / "predictions").glob("*.jsonl")
    first = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["index"] for r in first] == [0, 1]

    results = Evaluation(job, examples, tmp_path, make, progress=lambda **kw: seen.append(kw)).predict_all()
    assert seen[0]["done"] == 2 and seen[0]["total"] == 4
    rows = results["base-student"]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert rows[:2] == first  # kept as written, not predicted again

    loads: list[str] = []

    def counting(spec: CandidateSpec):
        loads.append(spec.name)
        candidate = make(spec)
        candidate.load = lambda: pytest.fail("a finished candidate must not be loaded again")  # type: ignore[method-assign]
        return candidate

    again = Evaluation(job, examples, tmp_path, counting).predict_all()
    assert again["base-student"] == rows and loads == ["base-student"]


@pytest.mark.slow
@pytest.mark.vllm
def test_teacher_through_a_real_generator(evaluator: dict, materialized, model_cache: Path, tmp_path: Path) -> None:
    """The teacher candidate for real: `python -m services.generator` in the vLLM environment
    (the catalog teacher, gemma3-270m), its Label RPC, and the base student beside it."""
    python = vllm_python()
    if not python.exists():
        pytest.skip(f"no vLLM environment at {python} (set DISTILLERY_VLLM_PYTHON): the generator cannot run here")
    # Materialize the teacher here (the GGUF conversion runs in this environment); the generator's
    # environment then only reads the cached checkpoint.
    materialized(SPEC.teacher)
    config: ServiceConfig = evaluator["config"]
    generator = start_service_process("generator", python, tmp_path / "generator", timeout=180, extra_env={
        "DISTILLERY_STORE_URL": config.store_url,  # one store: the generator reads the seeds we wrote
        "DISTILLERY_MODEL_CACHE": str(model_cache),
        "DISTILLERY_TEACHER": SPEC.teacher,
        "DISTILLERY_GENERATOR_WARMUP": "1",  # the engine starts while the student is evaluated
        "DISTILLERY_VLLM_KVCACHE_GIB": "1",
        "DISTILLERY_VLLM_MAX_MODEL_LEN": "2048",
    })
    try:
        teacher = evaluator_pb2.Candidate(name="teacher", kind=evaluator_pb2.CANDIDATE_KIND_TEACHER,
                                          endpoint=generator.address)
        result = _evaluate(evaluator, [_student(), teacher],
                           {"max_examples": 4, "teacher_batch_size": 4, "trained_students": ["base-student"]})
    except Exception:
        print(generator.log_tail())
        raise
    finally:
        generator.stop()
    scores = {s.name: s for s in result.scores}
    assert set(scores) == {"teacher", "base-student"}
    teacher_score = scores["teacher"].metrics["accuracy"]
    assert 0.0 <= teacher_score <= 1.0 and scores["teacher"].latency_p50_ms > 0
    report = json.loads(evaluator["store"].read_bytes(result.report_json.uri))
    if teacher_score > 0:
        assert result.student_teacher_ratio == pytest.approx(scores["base-student"].metrics["accuracy"] / teacher_score)
        assert report["ratio"]["teacher"] == "teacher"
    rows = [json.loads(line) for line in evaluator["store"].read_bytes(result.predictions.uri).decode().splitlines()]
    teacher_rows = [r for r in rows if r["candidate"] == "teacher"]
    assert len(teacher_rows) == 4
    # Whatever the weak teacher says, a non-label answer is counted and listed, never a crash.
    assert scores["teacher"].malformed == sum(1 for r in teacher_rows if r["malformed"])
    shutil.rmtree(tmp_path / "generator", ignore_errors=True)  # the vLLM cache is large


@pytest.mark.slow
def test_trained_student_checkpoint_adapter_and_onnx_export_agree(evaluator: dict, tmp_path: Path) -> None:
    """A real (tiny) fine-tuned student three ways: merged checkpoint, LoRA adapter on its base,
    and its ONNX export through serving's runtime. Same constrained labels everywhere."""
    from services.serving.export import export_onnx
    from services.serving.testing import SENTIMENT, SENTIMENT_EXAMPLES, tiny_student

    merged, adapter = tiny_student(tmp_path / "tiny")
    onnx_dir = export_onnx(merged, tmp_path / "onnx")
    test = evaluator["store"].put_bytes("inputs/tiny-test.jsonl", _jsonl(SENTIMENT_EXAMPLES))
    candidates = [
        evaluator_pb2.Candidate(name="student", kind=evaluator_pb2.CANDIDATE_KIND_STUDENT,
                                model=common_pb2.ModelRef(uri=str(merged))),
        evaluator_pb2.Candidate(name="student-lora", kind=evaluator_pb2.CANDIDATE_KIND_STUDENT,
                                model=common_pb2.ModelRef(uri=str(adapter), format=common_pb2.MODEL_FORMAT_PEFT_ADAPTER,
                                                          base=str(tmp_path / "tiny" / "base"))),
        evaluator_pb2.Candidate(name="student-onnx", kind=evaluator_pb2.CANDIDATE_KIND_ONNX,
                                model=common_pb2.ModelRef(uri=str(onnx_dir))),
    ]
    result = _evaluate(evaluator, candidates, spec=SENTIMENT, test=test)
    scores = {s.name: s for s in result.scores}
    assert set(scores) == {"student", "student-lora", "student-onnx"}
    assert scores["student"].metrics["accuracy"] >= 0.5  # it was fine-tuned on these very rows
    rows = [json.loads(line) for line in evaluator["store"].read_bytes(result.predictions.uri).decode().splitlines()]
    by = {(r["candidate"], r["index"]): r for r in rows}
    for index in range(len(SENTIMENT_EXAMPLES)):
        hf, lora, onnx = by[("student", index)], by[("student-lora", index)], by[("student-onnx", index)]
        for label in SENTIMENT.labels:
            assert hf["label_probabilities"][label] == pytest.approx(onnx["label_probabilities"][label], abs=5e-3)
            assert hf["label_probabilities"][label] == pytest.approx(lora["label_probabilities"][label], abs=5e-3)
        top, second = sorted(hf["label_probabilities"].values(), reverse=True)[:2]
        if top - second > 0.02:  # a near-tie may flip between fp32 kernels; anything clearer may not
            assert hf["prediction"] == lora["prediction"] == onnx["prediction"]
    assert result.student_teacher_ratio == 0.0  # no teacher in this run


def test_batched_student_generation_matches_one_at_a_time(evaluator: dict, model_cache: Path) -> None:
    """Left-padded batches must not change what a student answers: the same greedy JSON, row by
    row, as generating each sentence alone (the CPU default), only amortized in time."""
    from services.common.taskspec import Example
    from tests.helpers.tasks import CONLL

    sentences = ["EU rejects German call to boycott British lamb .", "Peter Blackburn",
                 "The European Commission said on Thursday it disagreed with German advice .",
                 "Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said ."]
    examples = [Example(input=s, output='{"entities": []}') for s in sentences]
    resolve = model_resolver(ModelReferences(evaluator["store"], evaluator["config"].model_cache))
    answers = {}
    for batch_size in (1, 4):
        options = EvalOptions.from_dict({"student_batch_size": batch_size, "max_new_tokens": 48})
        candidate = build_candidate(CandidateSpec("base-student", "student", model_uri=STUDENT), CONLL, options,
                                    resolve=resolve, client_factory=lambda _: None, generator_endpoint="",
                                    device="cpu")
        assert candidate.batch_size == batch_size
        candidate.load()
        try:
            answers[batch_size] = candidate.predict(examples)
        finally:
            candidate.close()
    assert "batches of 4, latency amortized" in candidate.describe()["decoding"]
    assert [p.raw for p in answers[4]] == [p.raw for p in answers[1]]
    assert [p.completion_tokens for p in answers[4]] == [p.completion_tokens for p in answers[1]]
    assert len({p.latency_s for p in answers[4]}) == 1  # one batch: its wall time split evenly
    with pytest.raises(Exception, match="student_batch_size must be >= 0"):
        EvalOptions.from_dict({"student_batch_size": -1})


@pytest.mark.gpu
def test_students_batch_on_a_gpu_by_default(evaluator: dict) -> None:
    """On CUDA the student runs in bf16 and generates 8 examples at once without being told to."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from services.common.taskspec import Example
    from tests.helpers.tasks import CONLL

    resolve = model_resolver(ModelReferences(evaluator["store"], evaluator["config"].model_cache))
    candidate = build_candidate(CandidateSpec("base-student", "student", model_uri=STUDENT), CONLL,
                                EvalOptions.from_dict({"max_new_tokens": 32}), resolve=resolve,
                                client_factory=lambda _: None, generator_endpoint="")
    assert candidate.batch_size == 8
    candidate.load()
    try:
        assert candidate.device.startswith("cuda") and candidate.model.dtype == torch.bfloat16
        predictions = candidate.predict([Example(input=f"Sentence {i} about Paris .", output="{}") for i in range(8)])
    finally:
        candidate.close()
    assert len(predictions) == 8 and all(0 < p.completion_tokens <= 32 for p in predictions)


def test_student_decode_budget_fits_long_seed_answers_in_its_own_tokens(evaluator: dict) -> None:
    """A task whose answers run past the 256-token default gets room for them: the budget is 1.5 x
    the longest seed answer counted by the student's own tokenizer (a cut JSON would score 0)."""
    from tests.helpers.tasks import CONLL

    entities = [{"text": f"Company number {i} of the long list", "type": "ORG"} for i in range(40)]
    long_answer = json.dumps({"entities": entities})
    resolve = model_resolver(ModelReferences(evaluator["store"], evaluator["config"].model_cache))
    candidate = build_candidate(CandidateSpec("base-student", "student", model_uri=STUDENT), CONLL,
                                EvalOptions.from_dict({}), resolve=resolve, client_factory=lambda _: None,
                                generator_endpoint="", device="cpu", seed_outputs=['{"entities": []}', long_answer])
    candidate.load()
    try:
        tokens = len(candidate.tokenizer.encode(long_answer, add_special_tokens=False))
        assert tokens > 256
        assert candidate.max_new_tokens == math.ceil(1.5 * tokens) + 16
    finally:
        candidate.close()
