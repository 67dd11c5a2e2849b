"""google.longrunning.Operations and distillery.v1.ProgressService over a JobRunner: the thin
edge that turns OperationRecords into Operation messages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from distillery.v1 import common_pb2
from distillery.v1 import operations_pb2 as dist_ops_pb2
from distillery.v1 import operations_pb2_grpc as dist_ops_grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

from services.common.convert import dict_to_message, message_from_record
from services.common.errors import DistilleryError, InvalidArgument
from services.common.jobs import JobRunner
from services.common.operations import OperationRecord
from services.common.server import STATUS_CODES, ServiceRegistration

log = logging.getLogger(__name__)


class ResultShapeError(DistilleryError):
    """A handler returned a result its kind's message cannot hold (a bug in the service)."""

    code = "INTERNAL"


def result_checker(result_types: dict[str, type[Message]]) -> Callable[[str, dict[str, Any]], None]:
    """JobRunner.result_check for these result types: strict proto-JSON parsing, so a field the
    message lacks (a misspelt key) fails the job with its name instead of being dropped."""
    def check(kind: str, result: dict[str, Any]) -> None:
        if kind not in result_types:
            return
        try:
            message_from_record(result, result_types[kind]())
        except InvalidArgument as exc:
            raise ResultShapeError(f"the {kind} result does not fit {result_types[kind].DESCRIPTOR.full_name}: "
                                   f"{exc}") from None
    return check


def _result_message(record: OperationRecord, message_type: type[Message]) -> Message:
    """The stored result as its message. Results are checked when stored; one written by an
    older version with a field since removed is still served, with that field named in the log."""
    try:
        return message_from_record(record.result, message_type())
    except InvalidArgument as exc:
        log.warning("operation %s: stored result does not fit %s (%s); unknown fields dropped", record.name,
                    message_type.DESCRIPTOR.full_name, exc)
        return dict_to_message(record.result, message_type())


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def record_to_operation(record: OperationRecord, result_types: dict[str, type[Message]]) -> operations_pb2.Operation:
    meta_dict = {k: v for k, v in record.metadata.items() if k in common_pb2.OperationMetadata.DESCRIPTOR.fields_by_name}
    metadata = dict_to_message(meta_dict, common_pb2.OperationMetadata())
    metadata.service = record.service
    metadata.state = record.state
    metadata.create_time.CopyFrom(_timestamp(record.create_time))
    metadata.update_time.CopyFrom(_timestamp(record.update_time))
    packed_meta = any_pb2.Any()
    packed_meta.Pack(metadata)
    operation = operations_pb2.Operation(name=record.name, metadata=packed_meta, done=record.done)
    if record.state == "SUCCEEDED" and record.result is not None and record.kind in result_types:
        result = _result_message(record, result_types[record.kind])
        packed = any_pb2.Any()
        packed.Pack(result)
        operation.response.CopyFrom(packed)
    elif record.done and record.error_code:
        code = STATUS_CODES.get(record.error_code, grpc.StatusCode.UNKNOWN)
        operation.error.CopyFrom(status_pb2.Status(code=code.value[0], message=record.error_message or ""))
    return operation


class OperationsServicer(operations_pb2_grpc.OperationsServicer, dist_ops_grpc.ProgressServiceServicer):
    def __init__(self, runner: JobRunner, result_types: dict[str, type[Message]]) -> None:
        self.runner = runner
        self.result_types = result_types

    def _op(self, record: OperationRecord) -> operations_pb2.Operation:
        return record_to_operation(record, self.result_types)

    def GetOperation(self, request: Any, context: grpc.ServicerContext) -> operations_pb2.Operation:
        return self._op(self.runner.ops.get(request.name))

    def ListOperations(self, request: Any, context: grpc.ServicerContext) -> operations_pb2.ListOperationsResponse:
        size = request.page_size or 50
        offset = int(request.page_token or 0)
        states = frozenset(s.strip().upper() for s in request.filter.replace("state=", "").split(",") if s.strip()) \
            if request.filter else None
        records = self.runner.ops.list(service=self.runner.service, states=states, limit=size + 1, offset=offset)
        response = operations_pb2.ListOperationsResponse(operations=[self._op(r) for r in records[:size]])
        if len(records) > size:
            response.next_page_token = str(offset + size)
        return response

    def CancelOperation(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.protobuf import empty_pb2

        self.runner.cancel(request.name)
        return empty_pb2.Empty()

    def DeleteOperation(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.protobuf import empty_pb2

        from services.common.errors import FailedPrecondition

        if not self.runner.ops.get(request.name).done:
            raise FailedPrecondition(f"operation {request.name} is still running; cancel it first")
        self.runner.ops.delete(request.name)
        return empty_pb2.Empty()

    def WaitOperation(self, request: Any, context: grpc.ServicerContext) -> operations_pb2.Operation:
        timeout = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else None
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining - 0.5) if timeout is not None else remaining - 0.5
        return self._op(self.runner.wait(request.name, timeout=max(0.0, timeout) if timeout is not None else None))

    def WatchOperation(self, request: Any, context: grpc.ServicerContext) -> Iterator[operations_pb2.Operation]:
        interval = request.interval_seconds or 0.5
        for record in self.runner.watch(request.name, interval=interval):
            if not context.is_active():
                return
            yield self._op(record)


def operations_registrations(runner: JobRunner, result_types: dict[str, type[Message]]) -> list[ServiceRegistration]:
    servicer = OperationsServicer(runner, result_types)
    runner.result_check = result_checker(result_types)
    return [
        ServiceRegistration(operations_pb2.DESCRIPTOR.services_by_name["Operations"].full_name,
                            lambda server: operations_pb2_grpc.add_OperationsServicer_to_server(servicer, server)),
        ServiceRegistration(dist_ops_pb2.DESCRIPTOR.services_by_name["ProgressService"].full_name,
                            lambda server: dist_ops_grpc.add_ProgressServiceServicer_to_server(servicer, server)),
    ]
