"""ValidatorService over gRPC: thin. StartValidation checks the request (task, artifacts, settings)
synchronously — a bad setting is an INVALID_ARGUMENT naming the key, not a failed operation —
converts it to a ValidationJob and queues a "validation" job (services.validator.handler)."""

from __future__ import annotations

from typing import Any

import grpc
from distillery.v1 import validator_pb2, validator_pb2_grpc
from google.protobuf.message import Message

from services.common.convert import (
    artifact_from_proto,
    message_from_record,
    message_to_dict,
    struct_to_dict,
    task_from_proto,
)
from services.common.errors import InvalidArgument
from services.common.operations_servicer import record_to_operation
from services.common.runtime import ServiceContext
from services.common.server import ServiceRegistration
from services.validator.config import build_config
from services.validator.filters.grounded import check_fields
from services.validator.handler import KIND, ValidationJob, run_validation

RESULT_TYPES: dict[str, type[Message]] = {KIND: validator_pb2.ValidationResult}


def parse_request(request: validator_pb2.StartValidationRequest) -> ValidationJob:
    if not request.HasField("task"):
        raise InvalidArgument("task is required: the TaskSpec the examples were generated for")
    if not request.examples.uri:
        raise InvalidArgument("examples is required: the generated JSONL to validate (an ArtifactRef)")
    spec = task_from_proto(request.task)
    overrides = struct_to_dict(request.config) if request.HasField("config") else {}
    config = build_config(spec.section("validation"), overrides)
    if config.grounded.enabled:
        check_fields(spec, config.grounded)  # a field path the output schema cannot have
    examples = artifact_from_proto(request.examples)
    assert examples is not None  # checked above
    return ValidationJob(spec, config, examples, artifact_from_proto(request.seeds), artifact_from_proto(request.test))


def job_from_record(record: dict[str, Any]) -> ValidationJob:
    """The persisted request (proto-JSON, as StartValidation stored it) as a ValidationJob."""
    return parse_request(message_from_record(record, validator_pb2.StartValidationRequest()))


class ValidatorServicer(validator_pb2_grpc.ValidatorServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def StartValidation(self, request: validator_pb2.StartValidationRequest,
                        context: grpc.ServicerContext) -> Any:
        parse_request(request)  # a bad request fails here, before any job exists
        record = self.ctx.runner.submit(KIND, message_to_dict(request), request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)


def build(ctx: ServiceContext) -> list[ServiceRegistration]:
    ctx.runner.register(KIND, lambda op: run_validation(op, job_from_record(op.request), ctx.config))
    servicer = ValidatorServicer(ctx)
    name = validator_pb2.DESCRIPTOR.services_by_name["ValidatorService"].full_name
    return [ServiceRegistration(name, lambda server: validator_pb2_grpc.add_ValidatorServiceServicer_to_server(
        servicer, server))]
