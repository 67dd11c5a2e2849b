"""PipelineService: thin translation between protobuf and the job runner."""

from __future__ import annotations

from typing import Any

import grpc
from distillery.v1 import pipeline_pb2, pipeline_pb2_grpc
from google.protobuf import json_format

from services.common.convert import (
    artifact_from_proto,
    message_from_record,
    message_to_dict,
    struct_to_dict,
    task_from_proto,
)
from services.common.errors import InvalidArgument
from services.common.jobs import JobRunner
from services.common.operations_servicer import record_to_operation
from services.pipeline.handler import (
    DISTILLATION,
    RETUNE,
    DistillationRequest,
    RetuneRequest,
    _find_job,
    job_state,
)
from services.pipeline.jobs_view import job_to_dict

RESULT_TYPES = {DISTILLATION: pipeline_pb2.DistillationResult, RETUNE: pipeline_pb2.DistillationResult}


def distillation_request(request: pipeline_pb2.StartDistillationRequest) -> DistillationRequest:
    """StartDistillationRequest → DistillationRequest; INVALID_ARGUMENT naming what is missing."""
    if not request.HasField("task"):
        raise InvalidArgument("task is required")
    spec = task_from_proto(request.task)
    seeds, test = artifact_from_proto(request.seeds), artifact_from_proto(request.test)
    traces = artifact_from_proto(request.traces)
    for name, artifact in (("seeds", seeds), ("test", test)):
        if artifact is None and traces is None:
            raise InvalidArgument(f"{name} is required (an ArtifactRef to {name}.jsonl in the store), "
                                  "unless traces is given")
    overrides = struct_to_dict(request.overrides) if request.HasField("overrides") else {}
    return DistillationRequest(spec=spec, seeds=seeds, test=test, context=artifact_from_proto(request.context),
                               overrides=overrides, traces=traces)


def distillation_from_record(record: dict[str, Any]) -> DistillationRequest:
    """A stored StartDistillation request (proto-JSON) as a DistillationRequest."""
    return distillation_request(message_from_record(record, pipeline_pb2.StartDistillationRequest()))


def retune_from_record(record: dict[str, Any]) -> RetuneRequest:
    """A stored StartRetune request (proto-JSON) as a RetuneRequest."""
    message = message_from_record(record, pipeline_pb2.StartRetuneRequest())
    overrides = struct_to_dict(message.overrides) if message.HasField("overrides") else {}
    return RetuneRequest(job=message.job, student=message.student.uri, overrides=overrides)


class PipelineServicer(pipeline_pb2_grpc.PipelineServiceServicer):
    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def StartDistillation(self, request: pipeline_pb2.StartDistillationRequest, context: grpc.ServicerContext) -> Any:
        distillation_request(request)  # a bad request fails here, before any job exists
        record = self.runner.submit(DISTILLATION, message_to_dict(request), request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)

    def StartRetune(self, request: pipeline_pb2.StartRetuneRequest, context: grpc.ServicerContext) -> Any:
        if not request.job:
            raise InvalidArgument("job is required: the job whose validated data to reuse")
        _find_job(self.runner, request.job)
        record = self.runner.submit(RETUNE, message_to_dict(request), request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)

    def RetryJob(self, request: pipeline_pb2.RetryJobRequest, context: grpc.ServicerContext) -> Any:
        record = self.runner.retry(_find_job(self.runner, request.name))
        return record_to_operation(record, RESULT_TYPES)

    def GetJob(self, request: pipeline_pb2.GetJobRequest, context: grpc.ServicerContext) -> pipeline_pb2.Job:
        state = job_state(self.runner, _find_job(self.runner, request.name))
        return json_format.ParseDict(job_to_dict(state), pipeline_pb2.Job())

    def ListJobs(self, request: pipeline_pb2.ListJobsRequest, context: grpc.ServicerContext) -> pipeline_pb2.ListJobsResponse:
        records = self.runner.ops.list(service="pipeline", limit=request.page_size or 50)
        jobs = [json_format.ParseDict(job_to_dict(job_state(self.runner, r.name)), pipeline_pb2.Job()) for r in records]
        return pipeline_pb2.ListJobsResponse(jobs=jobs)
