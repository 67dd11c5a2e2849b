"""OperationsClient.wait against a real gRPC server on loopback whose WaitOperation answers late
once: the client tries again instead of failing (a loaded or restarting server is not a failed job),
and still gives up at its own timeout."""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc

from services.common.client import OperationsClient


class SlowOnce(operations_pb2_grpc.OperationsServicer):
    def __init__(self, late_calls: int) -> None:
        self.calls = 0
        self.late_calls = late_calls

    def WaitOperation(self, request, context):  # noqa: N802 - gRPC method name
        self.calls += 1
        if self.calls <= self.late_calls:
            time.sleep(1.0)  # past the client's per-call deadline
        return operations_pb2.Operation(name=request.name, done=self.calls > self.late_calls)


def _serve(servicer: SlowOnce) -> tuple[grpc.Server, grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    operations_pb2_grpc.add_OperationsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, grpc.insecure_channel(f"127.0.0.1:{port}")


def test_a_late_answer_is_tried_again() -> None:
    servicer = SlowOnce(late_calls=1)
    server, channel = _serve(servicer)
    try:
        operation = OperationsClient(channel).wait("x/operations/1", timeout=20, poll=0.1, slack=0.3)
        assert operation.done and servicer.calls >= 2
    finally:
        channel.close()
        server.stop(None)


def test_the_overall_timeout_still_ends_the_wait() -> None:
    server, channel = _serve(SlowOnce(late_calls=1000))
    try:
        started = time.time()
        with pytest.raises(grpc.RpcError) as info:
            OperationsClient(channel).wait("x/operations/1", timeout=1.5, poll=0.1, slack=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.time() - started < 10
    finally:
        channel.close()
        server.stop(None)
