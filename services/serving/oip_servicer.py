"""Open Inference Protocol v2 (``inference.GRPCInferenceService``, the KServe / Triton protocol)
over the model repository, so tritonclient and KServe clients work unchanged.

Tensors: input ``text`` (BYTES, one element per input; ``context`` optional, same shape), output
``output`` (BYTES), ``completion_tokens`` (INT32) and ``label_probabilities`` (BYTES, JSON object
per row). Request parameters: ``max_tokens`` (int), ``unconstrained`` (bool). BYTES travel either
in ``contents.bytes_contents`` or, as tritonclient sends them, in ``raw_input_contents`` (each
element a 4-byte little-endian length then the bytes); the answer uses the form the request used."""

from __future__ import annotations

import json
import struct
from typing import Any

import grpc
import numpy as np
from inference import grpc_predict_v2_pb2 as pb
from inference import grpc_predict_v2_pb2_grpc as pb_grpc

from services.common.errors import InvalidArgument
from services.serving.repository import ModelRepository

SERVER_NAME = "distillery-serving"
SERVER_VERSION = "0.1.0"
OUTPUTS = ("output", "completion_tokens", "label_probabilities")


def decode_bytes_tensor(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidArgument("raw BYTES tensor is truncated (a 4-byte length prefix is cut)")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidArgument(f"raw BYTES tensor element of {length} bytes runs past the end")
        items.append(raw[offset:offset + length])
        offset += length
    return items


def encode_bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def _tensor_strings(request: pb.ModelInferRequest, index: int) -> list[str]:
    tensor = request.inputs[index]
    if tensor.datatype != "BYTES":
        raise InvalidArgument(f"input {tensor.name!r} has datatype {tensor.datatype}; send text as BYTES")
    if request.raw_input_contents:
        if index >= len(request.raw_input_contents):
            raise InvalidArgument(f"input {tensor.name!r} has no raw_input_contents entry")
        items = decode_bytes_tensor(request.raw_input_contents[index])
    else:
        items = list(tensor.contents.bytes_contents)
    expected = int(np.prod(tensor.shape)) if tensor.shape else len(items)
    if expected != len(items):
        raise InvalidArgument(f"input {tensor.name!r}: shape {list(tensor.shape)} holds {expected} elements, "
                              f"{len(items)} were sent")
    try:
        return [item.decode("utf-8") for item in items]
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"input {tensor.name!r} is not UTF-8 text: {exc}") from None


def _param(params: Any, name: str) -> Any:
    if name not in params:
        return None
    value = params[name]
    kind = value.WhichOneof("parameter_choice")
    return getattr(value, kind) if kind else None


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.ServicerContext) -> pb.ModelReadyResponse:
        try:
            runtime = self.repository.get(request.name, request.version)
        except Exception:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=runtime.ready)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])

    def ModelMetadata(self, request: pb.ModelMetadataRequest,
                      context: grpc.ServicerContext) -> pb.ModelMetadataResponse:
        runtime = self.repository.get(request.name, request.version)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=runtime.name, versions=self.repository.versions(runtime.name), platform="onnxruntime_onnx",
            inputs=[tensor(name="text", datatype="BYTES", shape=[-1]),
                    tensor(name="context", datatype="BYTES", shape=[-1])],
            outputs=[tensor(name="output", datatype="BYTES", shape=[-1]),
                     tensor(name="completion_tokens", datatype="INT32", shape=[-1]),
                     tensor(name="label_probabilities", datatype="BYTES", shape=[-1])])

    def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        runtime = self.repository.get(request.model_name, request.model_version)
        names = [t.name for t in request.inputs]
        if not names:
            raise InvalidArgument("no input tensors; send a BYTES tensor named 'text'")
        unknown = [n for n in names if n not in ("text", "context")]
        if unknown and not (len(names) == 1):
            raise InvalidArgument(f"unknown input tensor(s) {unknown}; this model takes 'text' and 'context'")
        text_index = names.index("text") if "text" in names else 0
        texts = _tensor_strings(request, text_index)
        contexts = _tensor_strings(request, names.index("context")) if "context" in names else None
        if contexts is not None and len(contexts) != len(texts):
            raise InvalidArgument(f"'context' has {len(contexts)} elements, 'text' has {len(texts)}")
        max_tokens = _param(request.parameters, "max_tokens")
        unconstrained = bool(_param(request.parameters, "unconstrained") or False)
        if max_tokens is not None and not isinstance(max_tokens, int):
            raise InvalidArgument("parameter max_tokens must be an int64 parameter")
        predictions = runtime.predict(texts, contexts, max_tokens, constrained=not unconstrained)
        wanted = [o.name for o in request.outputs] or list(OUTPUTS)
        bad = [w for w in wanted if w not in OUTPUTS]
        if bad:
            raise InvalidArgument(f"unknown requested output(s) {bad}; available: {', '.join(OUTPUTS)}")
        shape = list(request.inputs[text_index].shape) or [len(texts)]
        raw = bool(request.raw_input_contents)
        response = pb.ModelInferResponse(model_name=runtime.name, model_version=runtime.version, id=request.id)
        for name in wanted:
            out = response.outputs.add(name=name, shape=shape)
            if name == "completion_tokens":
                out.datatype = "INT32"
                values = [p.completion_tokens for p in predictions]
                if raw:
                    response.raw_output_contents.append(np.array(values, dtype="<i4").tobytes())
                else:
                    out.contents.int_contents.extend(values)
                continue
            out.datatype = "BYTES"
            items = [(p.output if name == "output" else json.dumps(p.label_probabilities)).encode()
                     for p in predictions]
            if raw:
                response.raw_output_contents.append(encode_bytes_tensor(items))
            else:
                out.contents.bytes_contents.extend(items)
        return response
