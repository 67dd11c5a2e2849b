"""PipelineService: thin translation between protobuf and the job runner."""

from __future__ import annotations

from typing import Any

import grpc
from distillery.v1 import pipeline_pb2, pipeline_pb2_grpc
from google.protobuf import json_format

from services.common.convert import message_to_dict
from services.common.errors import InvalidArgument
from services.common.jobs import JobRunner
from services.common.operations_servicer import record_to_operation
from services.pipeline.handler import DISTILLATION, RETUNE, _find_job, job_state
from services.pipeline.jobs_view import job_to_dict

RESULT_TYPES = {DISTILLATION: pipeline_pb2.DistillationResult, RETUNE: pipeline_pb2.DistillationResult}


class PipelineServicer(pipeline_pb2_grpc.PipelineServiceServicer):
    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def StartDistillation(self, request: pipeline_pb2.StartDistillationRequest, context: grpc.ServicerContext) -> Any:
        if not request.HasField("task"):
            raise InvalidArgument("task is required")
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
        return json_format.ParseDict(job_to_dict(state), pipeline_pb2.Job(), ignore_unknown_fields=True)

    def ListJobs(self, request: pipeline_pb2.ListJobsRequest, context: grpc.ServicerContext) -> pipeline_pb2.ListJobsResponse:
        records = self.runner.ops.list(service="pipeline", limit=request.page_size or 50)
        jobs = [json_format.ParseDict(job_to_dict(job_state(self.runner, r.name)), pipeline_pb2.Job(),
                                      ignore_unknown_fields=True) for r in records]
        return pipeline_pb2.ListJobsResponse(jobs=jobs)
