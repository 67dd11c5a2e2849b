"""distillery.v1.ServingService (thin: proto → plain Python → repository/export job → proto) and
the assembly of the serving process: model repository + OIP v2 + typed RPC + HTTP gateway."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
from distillery.v1 import common_pb2, serving_pb2, serving_pb2_grpc
from inference import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc

from services.common import envs
from services.common.artifacts import Artifact
from services.common.convert import (
    TASK_TYPE_TO_PROTO,
    artifact_from_proto,
    message_from_record,
    message_to_dict,
    task_from_proto,
)
from services.common.enums import gguf_types, short_name
from services.common.errors import InvalidArgument
from services.common.operations_servicer import record_to_operation
from services.common.runtime import ServiceContext
from services.common.server import ServiceRegistration
from services.serving.handler import DEFAULT_MIN_PARITY, KIND, ExportJob, export_handler
from services.serving.oip_servicer import InferenceServicer
from services.serving.repository import ModelRepository

log = logging.getLogger(__name__)
RESULT_TYPES = {KIND: serving_pb2.ExportResult}
QUANT_FROM_PROTO = {serving_pb2.QUANTIZATION_UNSPECIFIED: "none", serving_pb2.QUANTIZATION_NONE: "none",
                    serving_pb2.QUANTIZATION_INT8: "int8", serving_pb2.QUANTIZATION_INT4: "int4"}
QUANT_TO_PROTO = {"none": serving_pb2.QUANTIZATION_NONE, "int8": serving_pb2.QUANTIZATION_INT8,
                  "int4": serving_pb2.QUANTIZATION_INT4}


class ServingServicer(serving_pb2_grpc.ServingServiceServicer):
    def __init__(self, ctx: ServiceContext, repository: ModelRepository) -> None:
        self.ctx = ctx
        self.repository = repository

    def StartExport(self, request: serving_pb2.StartExportRequest, context: grpc.ServicerContext) -> Any:
        if not request.model.uri:
            raise InvalidArgument("model.uri is empty: give the merged checkpoint to export")
        if request.task.type == common_pb2.TASK_TYPE_UNSPECIFIED:
            raise InvalidArgument("task.type is missing; the export needs the task (prompt format, labels)")
        self.ctx.references.check(request.model.uri, "model.uri")
        if request.adapter.uri:
            self.ctx.references.check(request.adapter.uri, "adapter.uri", "adapter")
        if request.parity_inputs.uri:
            self.ctx.references.check(request.parity_inputs.uri, "parity_inputs.uri", "file")
        record = self.ctx.runner.submit(KIND, message_to_dict(request), request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)

    def LoadModel(self, request: serving_pb2.LoadModelRequest,
                  context: grpc.ServicerContext) -> serving_pb2.LoadModelResponse:
        if not request.name:
            raise InvalidArgument("name is empty")
        path = self.ctx.references.resolve(request.bundle.uri, "bundle.uri", "directory")
        spec = task_from_proto(request.task) if request.task.type else None
        quantization = QUANT_FROM_PROTO[request.quantization]
        runtime = self.repository.load(request.name, path, request.version, quantization, spec, request.bundle.uri)
        return serving_pb2.LoadModelResponse(model=self._info(runtime.name, runtime.version))

    def UnloadModel(self, request: serving_pb2.UnloadModelRequest,
                    context: grpc.ServicerContext) -> serving_pb2.UnloadModelResponse:
        self.repository.unload(request.name, request.version)
        return serving_pb2.UnloadModelResponse()

    def ListModels(self, request: Any, context: grpc.ServicerContext) -> serving_pb2.ListModelsResponse:
        return serving_pb2.ListModelsResponse(models=[self._info(e.name, e.version) for e in self.repository.list()])

    def _info(self, name: str, version: str) -> serving_pb2.ModelInfo:
        entry = self.repository.entry(name, version)
        return serving_pb2.ModelInfo(name=name, version=version, ready=self.repository.get(name, version).ready,
                                     task_type=TASK_TYPE_TO_PROTO.get(entry.task.get("type"), 0),
                                     quantization=QUANT_TO_PROTO[entry.quantization], uri=entry.uri)

    def Predict(self, request: serving_pb2.PredictRequest,
                context: grpc.ServicerContext) -> serving_pb2.PredictResponse:
        runtime = self.repository.get(request.model_name, request.model_version)
        predictions = runtime.predict(list(request.inputs), list(request.contexts) or None,
                                      request.max_tokens or None, constrained=not request.unconstrained)
        return serving_pb2.PredictResponse(
            model_name=runtime.name, model_version=runtime.version,
            predictions=[serving_pb2.Prediction(output=p.output, label_probabilities=p.label_probabilities,
                                                completion_tokens=p.completion_tokens) for p in predictions])

    def PredictStream(self, request: serving_pb2.PredictStreamRequest,
                      context: grpc.ServicerContext) -> Iterator[serving_pb2.PredictStreamResponse]:
        runtime = self.repository.get(request.model_name, request.model_version)
        for delta in runtime.stream(request.input, request.context, request.max_tokens or None):
            if not context.is_active():
                return
            yield serving_pb2.PredictStreamResponse(delta=delta)
        yield serving_pb2.PredictStreamResponse(finished=True)


def export_job(request: serving_pb2.StartExportRequest) -> ExportJob:
    """StartExport's request as an ExportJob (the one protobuf → typed conversion of the export)."""
    return ExportJob(spec=task_from_proto(request.task), model=Artifact(request.model.uri, "", 0),
                     adapter=Artifact(request.adapter.uri, "", 0) if request.adapter.uri else None,
                     quantizations=tuple(short_name(serving_pb2.Quantization.Name(q)) for q in request.quantizations),
                     parity_inputs=artifact_from_proto(request.parity_inputs),
                     min_parity=request.min_parity or DEFAULT_MIN_PARITY,
                     model_name=request.model_name, model_version=request.model_version,
                     gguf=gguf_types(request.gguf))



def export_job_from_record(record: dict[str, Any]) -> ExportJob:
    """The persisted request (proto-JSON, as StartExport stored it) as an ExportJob."""
    return export_job(message_from_record(record, serving_pb2.StartExportRequest()))


class ServingApp:
    """What one serving process holds: the repository and the HTTP gateway beside the gRPC server."""

    def __init__(self, repository: ModelRepository, gateway: Any = None) -> None:
        self.repository = repository
        self.gateway = gateway

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        self.repository.close()


def build(ctx: ServiceContext, http_port: int | None = None) -> list[ServiceRegistration]:
    """Mount OIP v2 + ServingService; start the OpenAI-compatible gateway (port from
    DISTILLERY_HTTP_PORT, default 8000; -1 turns it off). ``ctx.serving_app`` keeps both."""
    from services.serving.http_gateway import HttpGateway

    repository = ModelRepository(ctx.config.home / "serving" / "models.json",
                                 max_batch=envs.SERVING_MAX_BATCH.get(),
                                 max_wait_ms=envs.SERVING_BATCH_WAIT_MS.get(),
                                 max_queue=envs.SERVING_MAX_QUEUE.get())
    restored = repository.restore()
    if restored:
        log.info("reloaded models: %s", ", ".join(restored))
    ctx.runner.register(KIND, export_handler(repository, ctx.references, export_job_from_record))
    explicit = http_port is not None or envs.HTTP_PORT.is_set()
    port = http_port if http_port is not None else envs.HTTP_PORT.get()
    gateway = None
    if port >= 0:
        try:
            gateway = HttpGateway(repository, ctx.config.host, port, ctx.config.auth_token,
                                  ctx.config.tls_cert, ctx.config.tls_key).start()
        except OSError as exc:
            if explicit:
                raise
            # The default port is taken (another local server): keep gRPC up, say so loudly.
            log.error("OpenAI-compatible HTTP gateway not started: %s; set DISTILLERY_HTTP_PORT", exc)
    ctx.serving_app = ServingApp(repository, gateway)  # type: ignore[attr-defined]
    typed = ServingServicer(ctx, repository)
    oip = InferenceServicer(repository)
    return [
        ServiceRegistration(serving_pb2.DESCRIPTOR.services_by_name["ServingService"].full_name,
                            lambda server: serving_pb2_grpc.add_ServingServiceServicer_to_server(typed, server)),
        ServiceRegistration(grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
                            lambda server: grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
                                oip, server)),
    ]
