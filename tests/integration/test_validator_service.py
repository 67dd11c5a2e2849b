"""The real ValidatorService over gRPC on loopback: StartValidation → operation → ValidationResult,
on generator-shaped output (ids, teacher metadata with label probabilities)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import grpc
import pytest
from distillery.v1 import validator_pb2, validator_pb2_grpc

from services.common.client import OperationsClient, open_channel, wait_healthy
from services.common.config import ServiceConfig
from services.common.convert import artifact_to_proto, struct_from, task_to_proto
from services.common.runtime import start_service
from services.common.taskspec import TaskSpec
from services.validator.servicer import RESULT_TYPES, build
from tests.helpers.tasks import CONLL

SPEC = TaskSpec(
    name="banking", type="classification",
    description="Classify banking customer support messages by intent: card problems, money transfers, "
                "account balance questions.",
    labels=["card", "transfer", "balance"],
    # label_floor.min_rows 1: every label here has 2 rows, and the default floor of 5 would rescue
    # the low-confidence row this test follows to rejected.jsonl (the floor has unit tests of its own)
    settings={"validation": {"near_duplicate": {"threshold": 0.8}, "label_floor": {"min_rows": 1}}})
SEEDS = [("My card was declined at the shop", "card"), ("I lost my debit card on the bus", "card"),
         ("How do I send money to my friend", "transfer"), ("Transfer 50 euros to my savings account", "transfer"),
         ("What is my account balance right now", "balance"), ("How much money do I have left", "balance")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _generated_row(n: int, text: str, label: str, probability: float) -> dict:
    """What the generator writes: an id, the example, and teacher metadata."""
    others = {k: round((1 - probability) / 2, 4) for k in SPEC.labels if k != label}
    return {"id": f"gen-{n:05d}", "input": text, "output": label,
            "metadata": {"teacher": "gemma3-270m", "mutation": "specificity", "batch": n // 4,
                         "label_probability": probability,
                         "choice_probabilities": {label: probability, **others}}}


def _shared_model_cache(request: pytest.FixtureRequest) -> Path | None:
    """The student checkpoint is materialized once and shared: the conftest fixture, else the
    catalog's default cache."""
    try:
        return request.getfixturevalue("model_cache")
    except pytest.FixtureLookupError:
        try:
            from services.common.catalog import default_cache_dir
        except ImportError:
            return None
        return default_cache_dir()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    home = tmp_path_factory.mktemp("validator-home")
    # The generator peer points at a port nobody listens on: the judge must fail cleanly.
    config = ServiceConfig(service="validator", port=_free_port(), metrics_port=-1, home=home,
                           peers={"generator": f"127.0.0.1:{_free_port()}"},
                           model_cache=_shared_model_cache(request))
    server, ctx = start_service(config, build, RESULT_TYPES)
    channel = open_channel(config.address)
    assert wait_healthy(channel, timeout=30)
    yield ctx, channel
    channel.close()
    server.stop(grace=1)


def _request(ctx, rows: list[str], config: dict | None = None, request_id: str = "", *, spec: TaskSpec = SPEC,
             seeds: list[tuple[str, object]] = SEEDS) -> validator_pb2.StartValidationRequest:
    store = ctx.store
    examples = store.put_bytes(f"inputs/{request_id or 'x'}/generated.jsonl", ("\n".join(rows) + "\n").encode())
    seeds = store.put_bytes(f"inputs/{spec.name}/seeds.jsonl",
                            "".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in seeds).encode())
    test = store.put_bytes("inputs/test.jsonl",
                           (json.dumps({"input": "Why was my card blocked yesterday evening", "output": "card"})
                            + "\n").encode())
    return validator_pb2.StartValidationRequest(
        task=task_to_proto(spec), examples=artifact_to_proto(examples), seeds=artifact_to_proto(seeds),
        test=artifact_to_proto(test), config=struct_from(config or {}), request_id=request_id,
        output_prefix=f"validation/{request_id or 'x'}")


def test_start_validation_end_to_end(service) -> None:
    ctx, channel = service
    texts = ["My credit card got swallowed by the cash machine", "The chip on my card stopped working",
             "Send 200 dollars to my brother overseas", "Show me how much is in my checking account",
             "Set up a recurring payment to my landlord every month", "Tell me the remaining funds on my savings"]
    labels = ["card", "card", "transfer", "balance", "transfer", "balance"]
    rows = [json.dumps(_generated_row(n, t, lab, 0.9)) for n, (t, lab) in enumerate(zip(texts, labels))]
    rows += [
        json.dumps(_generated_row(90, "my credit card got swallowed by the cash machine!", "card", 0.9)),  # duplicate
        json.dumps(_generated_row(91, "My card PIN is not accepted any more", "card", 0.3)),               # low_confidence
        json.dumps(_generated_row(92, "My card PIN is blocked", "cards", 0.9)),                            # format
        "{this is not json",                                                                                # malformed
    ]
    stub = validator_pb2_grpc.ValidatorServiceStub(channel)
    operation = stub.StartValidation(_request(ctx, rows, {"length": {"max_total_tokens": 4096}}, "run1"), timeout=30)
    ops = OperationsClient(channel)
    done = ops.wait(operation.name, timeout=180, poll=5)
    result = OperationsClient.result(done, validator_pb2.ValidationResult)
    assert (result.read, result.accepted_count, result.rejected_count) == (10, 6, 4)
    assert dict(result.rejected_by_reason) == {
        "malformed": 1, "format": 1, "ungrounded": 0, "too_long": 0, "duplicate": 1, "near_duplicate": 0, "test_leak": 0,
        "off_topic": 0, "label_imbalance": 0, "low_confidence": 1, "disagreement": 0, "judge_rejected": 0}
    accepted = [json.loads(x) for x in ctx.store.read_bytes(result.accepted.uri).decode().splitlines()]
    assert [r["id"] for r in accepted] == [f"gen-{n:05d}" for n in range(6)]
    assert accepted[0]["metadata"]["teacher"] == "gemma3-270m"
    rejected = [json.loads(x) for x in ctx.store.read_bytes(result.rejected.uri).decode().splitlines()]
    assert {r["reason"] for r in rejected} == {"malformed", "format", "duplicate", "low_confidence"}
    assert next(r for r in rejected if r["reason"] == "malformed")["line"] == 10
    report = ctx.store.read_json(result.report.uri)
    assert report["read"] == 10 and report["labels"]["card"]["accepted"] == 2
    assert report["config"]["near_duplicate"]["threshold"] == 0.8  # task.yaml's validation section applied
    assert report["config"]["length"]["max_total_tokens"] == 4096  # request config applied on top
    assert "validation/run1/accepted.jsonl" in result.accepted.uri
    # Lengths are counted with the student's own tokenizer where the catalog can provide it.
    assert report["tokenizer"] in ("smollm2-135m-instruct", "whitespace")
    if report["tokenizer"] == "whitespace":
        assert any("whitespace" in note for note in report["notes"])


CONLL_SEEDS = [
    ("Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said on Wednesday .",
     {"entities": [{"text": "Germany", "type": "LOC"}, {"text": "European Union", "type": "ORG"},
                   {"text": "Werner Zwingmann", "type": "PER"}]}),
    ("Rugby union : Wales beat Fiji in Cardiff on Saturday .",
     {"entities": [{"text": "Wales", "type": "LOC"}, {"text": "Fiji", "type": "LOC"},
                   {"text": "Cardiff", "type": "LOC"}]}),
    ("The club will pay a fine , the league said .", {"entities": []}),
]


def test_hallucinated_entity_is_rejected_as_ungrounded_only_when_enabled(service) -> None:
    ctx, channel = service
    rows = [
        json.dumps({"id": "gen-0", "input": "Leeds 's manager praised the ( U.S. ) striker after the match .",
                    "output": {"entities": [{"text": "Leeds's", "type": "ORG"}, {"text": "U.S.", "type": "LOC"}]}}),
        json.dumps({"id": "gen-1", "input": "The club will pay the fine and the player will not be restricted "
                                            "for the rest of the season .",
                    "output": {"entities": [{"text": "Zimbabwe Open", "type": "MISC"}]}}),
        json.dumps({"id": "gen-2", "input": "Ajax beat Feyenoord 2-1 in Amsterdam on Sunday .",
                    "output": {"entities": [{"text": "Ajax", "type": "ORG"}, {"text": "Feyenoord", "type": "ORG"},
                                            {"text": "Amsterdam", "type": "LOC"}]}}),
    ]
    stub = validator_pb2_grpc.ValidatorServiceStub(channel)
    ops = OperationsClient(channel)
    # off_topic is not what is tested here: three seeds are too few words to judge news sentences by.
    base = {"length": {"max_total_tokens": 4096}, "off_topic": {"enabled": False}}
    results = {}
    for name, grounded in (("grounded-on", {"enabled": True}), ("grounded-off", {"enabled": False})):
        request = _request(ctx, rows, {**base, "grounded": grounded}, name, spec=CONLL, seeds=CONLL_SEEDS)
        operation = stub.StartValidation(request, timeout=30)
        done = ops.wait(operation.name, timeout=180, poll=2)
        results[name] = OperationsClient.result(done, validator_pb2.ValidationResult)

    on = results["grounded-on"]
    assert (on.read, on.accepted_count, on.rejected_count) == (3, 2, 1)
    assert on.rejected_by_reason["ungrounded"] == 1
    rejected = [json.loads(x) for x in ctx.store.read_bytes(on.rejected.uri).decode().splitlines()]
    assert [(r["line"], r["reason"], r["example"]["id"]) for r in rejected] == [(2, "ungrounded", "gen-1")]
    assert rejected[0]["detail"] == 'output field entities[0].text "Zimbabwe Open" does not occur in the input'
    assert ctx.store.read_json(on.report.uri)["config"]["grounded"]["enabled"] is True

    off = results["grounded-off"]
    assert (off.read, off.accepted_count, off.rejected_count) == (3, 3, 0)
    accepted = [json.loads(x) for x in ctx.store.read_bytes(off.accepted.uri).decode().splitlines()]
    assert [r["id"] for r in accepted] == ["gen-0", "gen-1", "gen-2"]


def test_grounded_settings_are_checked_before_a_job_exists(service) -> None:
    ctx, channel = service
    stub = validator_pb2_grpc.ValidatorServiceStub(channel)
    row = json.dumps({"input": "Ajax won .", "output": {"entities": [{"text": "Ajax", "type": "ORG"}]}})
    for config, expected in (({"grounded": {"source": "passage"}}, "validation.grounded.source"),
                             ({"grounded": {"enabled": True, "fields": ["entities.txt"]}},
                              "validation.grounded.fields[0]"),
                             ({"grounded": {"enabeld": True}}, "validation.grounded.enabeld")):
        with pytest.raises(grpc.RpcError) as err:
            stub.StartValidation(_request(ctx, [row], config, "bad-grounded", spec=CONLL, seeds=CONLL_SEEDS),
                                 timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert expected in err.value.details()


def test_unknown_setting_is_invalid_argument_naming_the_key(service) -> None:
    ctx, channel = service
    stub = validator_pb2_grpc.ValidatorServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.StartValidation(_request(ctx, ['{"input": "a", "output": "card"}'],
                                      {"near_duplicate": {"treshold": 0.9}}, "bad"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "validation.near_duplicate.treshold" in err.value.details()


def test_missing_examples_is_invalid_argument(service) -> None:
    _, channel = service
    stub = validator_pb2_grpc.ValidatorServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.StartValidation(validator_pb2.StartValidationRequest(task=task_to_proto(SPEC)), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "examples" in err.value.details()


def test_judge_with_an_unreachable_generator_fails_the_operation_as_unavailable(service) -> None:
    ctx, channel = service
    stub = validator_pb2_grpc.ValidatorServiceStub(channel)
    operation = stub.StartValidation(_request(ctx, [json.dumps(_generated_row(0, "My card broke in half", "card", 0.9))],
                                              {"judge": {"enabled": True}}, "judge-down"), timeout=30)
    done = OperationsClient(channel).wait(operation.name, timeout=120, poll=5)
    assert done.done and done.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "generator" in done.error.message and "Complete" in done.error.message


@pytest.mark.slow
@pytest.mark.vllm
def test_judge_against_the_real_generator(tmp_path: Path) -> None:
    """The judge's client against the real generator service (a subprocess in the vLLM environment,
    with the default local teacher) — skipped where that environment or the model catalog is missing."""
    from tests.helpers.services import free_port, start_service_process, vllm_python

    python = vllm_python()
    if not python.exists():
        pytest.skip(f"no vLLM environment at {python} (set DISTILLERY_VLLM_PYTHON)")
    pytest.importorskip("services.common.catalog", reason="the model catalog is not in this checkout")
    from services.common.catalog import resolve_model
    from services.validator.filters.judge import judge_prompt
    from services.validator.judge_client import GeneratorGrader
    from services.validator.row import Row

    cache = tmp_path / "models"
    try:
        resolve_model("gemma3-270m", cache)
    except Exception as exc:  # the teacher's weights package is not installed here
        pytest.skip(f"default teacher not available: {exc}")
    handle = start_service_process("generator", python, tmp_path / "gen-home", port=free_port(),
                                   extra_env={"DISTILLERY_MODEL_CACHE": str(cache)}, timeout=300)
    try:
        grader = GeneratorGrader(handle.address, timeout=600)
        rows = [Row(line=1, id="a", input="My card was declined", raw_output="card", output="card"),
                Row(line=2, id="b", input="My card was declined", raw_output="balance", output="balance")]
        scores = grader([judge_prompt(SPEC, "", row) for row in rows])
        grader.close()
        assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    finally:
        handle.stop()


def test_a_service_on_postgresql_runs_a_job_and_a_second_replica_sees_it(
        tmp_path: Path, request: pytest.FixtureRequest, postgres_server) -> None:
    """The validator with DISTILLERY_DB_URL=postgresql://… (a real server): the job runs to its
    result, and a second server of the same service on the same database and store (another
    replica) answers GetOperation with that result."""
    db_url = postgres_server.database_url("validator_replicas")
    home = tmp_path / "home"
    servers = []
    for _ in range(2):
        config = ServiceConfig(service="validator", port=_free_port(), metrics_port=-1, home=home, db_url=db_url,
                               peers={"generator": f"127.0.0.1:{_free_port()}"},
                               model_cache=_shared_model_cache(request))
        servers.append((*start_service(config, build, RESULT_TYPES), open_channel(config.address)))
    try:
        (_, first_ctx, first), (_, _, second) = servers
        assert wait_healthy(first, timeout=30) and wait_healthy(second, timeout=30)
        rows = [json.dumps(_generated_row(n, text, label, 0.9)) for n, (text, label) in enumerate(
            [("My credit card got swallowed by the cash machine", "card"),
             ("Send 200 dollars to my brother overseas", "transfer"),
             ("Show me how much is in my checking account", "balance")])]
        stub = validator_pb2_grpc.ValidatorServiceStub(first)
        operation = stub.StartValidation(_request(first_ctx, rows, request_id="pg-1"), timeout=30)
        done = OperationsClient(first).wait(operation.name, timeout=180, poll=2)
        assert OperationsClient.result(done, validator_pb2.ValidationResult).accepted_count == 3
        seen = OperationsClient(second).wait(operation.name, timeout=10, poll=1)
        assert seen.done and OperationsClient.result(seen, validator_pb2.ValidationResult).accepted_count == 3
        # the same request_id started on the other replica is the same operation (idempotent start)
        again = validator_pb2_grpc.ValidatorServiceStub(second).StartValidation(
            _request(first_ctx, rows, request_id="pg-1"), timeout=30)
        assert again.name == operation.name
    finally:
        for server, _, channel in servers:
            channel.close()
            server.stop(grace=1)
