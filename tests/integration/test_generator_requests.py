"""The generator's gRPC edge in-process (core environment, no engine needed): bad requests are
refused with INVALID_ARGUMENT and a message naming the field, before any teacher starts."""

from __future__ import annotations

import grpc
import pytest
from distillery.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.client import open_channel
from services.common.config import ServiceConfig
from services.common.convert import task_to_proto
from services.common.runtime import start_service
from services.common.taskspec import TaskSpec
from services.generator.servicer import RESULT_TYPES, build
from tests.helpers.services import free_port


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("generator-edge")
    config = ServiceConfig(service="generator", port=free_port(), metrics_port=-1, home=home)
    server, _ = start_service(config, build, RESULT_TYPES)
    yield generator_pb2_grpc.GeneratorServiceStub(open_channel(config.address))
    server.stop(1)


def code_and_message(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_start_generation_checks_its_request(stub) -> None:
    one_label = TaskSpec(name="t", type="classification", description="d", labels=["only"])
    code, message = code_and_message(lambda: stub.StartGeneration(
        generator_pb2.StartGenerationRequest(task=task_to_proto(one_label)), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "labels" in message
    ok = TaskSpec(name="t", type="classification", description="d", labels=["a", "b"])
    code, message = code_and_message(lambda: stub.StartGeneration(
        generator_pb2.StartGenerationRequest(task=task_to_proto(ok)), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "seeds" in message
    code, message = code_and_message(lambda: stub.StartGeneration(generator_pb2.StartGenerationRequest(
        task=task_to_proto(ok), seeds=common_pb2.ArtifactRef(uri="inputs/missing.jsonl"), temperature=7.0),
        timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "temperature" in message
    code, message = code_and_message(lambda: stub.StartGeneration(generator_pb2.StartGenerationRequest(
        task=task_to_proto(ok), seeds=common_pb2.ArtifactRef(uri="inputs/missing.jsonl")), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "does not exist" in message
    code, message = code_and_message(lambda: stub.StartGeneration(generator_pb2.StartGenerationRequest(
        task=common_pb2.TaskSpec(name="x")), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "task.type" in message


def test_complete_and_label_check_their_request(stub) -> None:
    code, message = code_and_message(lambda: stub.Complete(generator_pb2.CompleteRequest(), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "prompts" in message
    code, message = code_and_message(lambda: stub.Complete(generator_pb2.CompleteRequest(
        prompts=[generator_pb2.Prompt(text="x")], constraint=generator_pb2.OutputConstraint(json_schema="{nope")),
        timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "json_schema" in message
    code, message = code_and_message(lambda: stub.Complete(generator_pb2.CompleteRequest(
        prompts=[generator_pb2.Prompt()]), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "prompts[0]" in message
    code, message = code_and_message(lambda: stub.Complete(generator_pb2.CompleteRequest(
        prompts=[generator_pb2.Prompt(text="x")], choice_logprobs=True), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "choice" in message
    task = TaskSpec(name="t", type="tool-calling", description="d")
    code, message = code_and_message(lambda: stub.Label(generator_pb2.LabelRequest(task=task_to_proto(task)),
                                                        timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "tools" in message
