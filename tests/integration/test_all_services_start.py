"""Every service starts as a real process on loopback, reports SERVING through grpc.health.v1,
exposes Prometheus metrics and its own services through reflection, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.client import health_status
from tests.helpers.services import free_port, start_service_process, vllm_python

EXPECTED = {
    "pipeline": "distillery.v1.PipelineService",
    "generator": "distillery.v1.GeneratorService",
    "validator": "distillery.v1.ValidatorService",
    "trainer": "distillery.v1.TrainerService",
    "evaluator": "distillery.v1.EvaluatorService",
    "serving": "distillery.v1.ServingService",
}


def _listed_services(channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    return {service.name for reply in replies for service in reply.list_services_response.service}


@pytest.mark.parametrize("service", list(EXPECTED))
def test_service_process_serves_health_metrics_and_reflection(service: str, tmp_path: Path) -> None:
    python = None
    if service == "generator":
        python = vllm_python()
        if not python.exists():
            pytest.skip(f"the vLLM environment ({python}) is not built; run `make setup`")
    metrics_port = free_port()
    extra = {"DISTILLERY_METRICS_PORT": str(metrics_port), "DISTILLERY_HTTP_PORT": str(free_port())}
    handle = start_service_process(service, python, tmp_path / service, extra_env=extra, timeout=180)
    try:
        channel = handle.channel()
        assert health_status(channel) == "SERVING"
        listed = _listed_services(channel)
        assert {EXPECTED[service], "grpc.health.v1.Health", "google.longrunning.Operations"} <= listed
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert "distillery_grpc_requests_total" in metrics
        channel.close()
    finally:
        handle.kill(signal.SIGTERM, timeout=60)
    assert handle.process is not None and handle.process.returncode == 0, handle.log_tail()
