"""The pipeline's view of the five worker services, as a small interface (so the orchestrator
stays grpc-free and testable) and its gRPC implementation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from distillery.v1 import (
    common_pb2,
    evaluator_pb2,
    evaluator_pb2_grpc,
    generator_pb2,
    generator_pb2_grpc,
    serving_pb2,
    serving_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
    validator_pb2,
    validator_pb2_grpc,
)
from google.longrunning import operations_pb2
from google.protobuf.message import Message

from services.common.artifacts import Artifact
from services.common.client import OperationsClient, open_channel, operation_metadata
from services.common.config import ClientSecurity
from services.common.convert import artifact_to_proto, message_to_dict, struct_from, task_to_proto
from services.common.errors import Cancelled, FailedPrecondition, Unavailable
from services.common.taskspec import TaskSpec

ProgressFn = Callable[[dict[str, Any]], None]
CancelledFn = Callable[[], bool]


class Workers(Protocol):
    def run(self, stage: str, service: str, request: dict[str, Any], on_progress: ProgressFn,
            cancelled: CancelledFn) -> tuple[str, dict[str, Any]]: ...

    def call(self, service: str, method: str, request: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class _Rpc:
    start: Callable[[Any], Callable[..., operations_pb2.Operation]]
    request_type: type[Message]
    result_type: type[Message]


_START_RPCS: dict[str, _Rpc] = {
    "generator": _Rpc(lambda ch: generator_pb2_grpc.GeneratorServiceStub(ch).StartGeneration,
                      generator_pb2.StartGenerationRequest, generator_pb2.GenerationResult),
    "validator": _Rpc(lambda ch: validator_pb2_grpc.ValidatorServiceStub(ch).StartValidation,
                      validator_pb2.StartValidationRequest, validator_pb2.ValidationResult),
    "trainer": _Rpc(lambda ch: trainer_pb2_grpc.TrainerServiceStub(ch).StartTraining,
                    trainer_pb2.StartTrainingRequest, trainer_pb2.TrainingResult),
    "evaluator": _Rpc(lambda ch: evaluator_pb2_grpc.EvaluatorServiceStub(ch).StartEvaluation,
                      evaluator_pb2.StartEvaluationRequest, evaluator_pb2.EvaluationResult),
    "serving": _Rpc(lambda ch: serving_pb2_grpc.ServingServiceStub(ch).StartExport,
                    serving_pb2.StartExportRequest, serving_pb2.ExportResult),
}


class GrpcWorkers:
    """Starts worker operations over gRPC and follows them to the end."""

    def __init__(self, peers: dict[str, str], security: ClientSecurity | None = None,
                 poll_seconds: float = 1.0) -> None:
        self.peers = peers
        self.security = security or ClientSecurity()
        self.poll_seconds = poll_seconds
        self._channels: dict[str, grpc.Channel] = {}

    def channel(self, service: str) -> grpc.Channel:
        if service not in self._channels:
            self._channels[service] = open_channel(self.peers[service], security=self.security)
        return self._channels[service]

    def run(self, stage: str, service: str, request: dict[str, Any], on_progress: ProgressFn,
            cancelled: CancelledFn) -> tuple[str, dict[str, Any]]:
        rpc = _START_RPCS[service]
        from google.protobuf import json_format

        message = json_format.ParseDict(request, rpc.request_type(), ignore_unknown_fields=False)
        channel = self.channel(service)
        operation = self._retry(service, lambda: rpc.start(channel)(message, timeout=60))
        ops = OperationsClient(channel)
        name = operation.name
        while not operation.done:
            if cancelled():
                self._retry(service, lambda: ops.cancel(name))
                raise Cancelled(f"stage {stage} cancelled")
            operation = self._retry(service, lambda: ops.wait(name, timeout=self.poll_seconds, poll=self.poll_seconds))
            meta = operation_metadata(operation)
            on_progress(message_to_dict(meta))
        if operation.HasField("error") and operation.error.code != 0:
            code = grpc.StatusCode.UNKNOWN
            for candidate in grpc.StatusCode:
                if candidate.value[0] == operation.error.code:
                    code = candidate
            raise FailedPrecondition(f"stage {stage} failed on the {service} ({code.name}): {operation.error.message}")
        return name, message_to_dict(OperationsClient.result(operation, rpc.result_type))

    def _retry(self, service: str, call: Callable[[], Any], attempts: int = 60) -> Any:
        """Worker restarts are expected (that is what resuming is for): retry UNAVAILABLE."""
        for attempt in range(attempts):
            try:
                return call()
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                        or attempt == attempts - 1:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        raise Unavailable(f"the {service} service at {self.peers[service]} is not reachable; "
                                          "start it (`distillery up`) and retry the job") from None
                    raise FailedPrecondition(f"{service}: {exc.code().name}: {exc.details()}") from None
                time.sleep(min(5.0, 0.5 * (attempt + 1)))
        raise AssertionError("unreachable")

    def call(self, service: str, method: str, request: dict[str, Any]) -> dict[str, Any]:
        from google.protobuf import json_format

        if service == "serving" and method == "LoadModel":
            stub = serving_pb2_grpc.ServingServiceStub(self.channel(service))
            message = json_format.ParseDict(request, serving_pb2.LoadModelRequest())
            return message_to_dict(self._retry(service, lambda: stub.LoadModel(message, timeout=600)))
        raise FailedPrecondition(f"unknown call {service}.{method}")


def task_request(spec: TaskSpec) -> dict[str, Any]:
    return message_to_dict(task_to_proto(spec))


def artifact_request(artifact: Artifact | dict[str, Any] | None) -> dict[str, Any]:
    return message_to_dict(artifact_to_proto(artifact))


def struct_request(value: dict[str, Any]) -> dict[str, Any]:
    return message_to_dict(struct_from(value)) if value else {}


__all__ = ["Workers", "GrpcWorkers", "task_request", "artifact_request", "struct_request", "common_pb2"]
