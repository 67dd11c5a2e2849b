"""The download bundle: merged HF checkpoint + LoRA adapter + ONNX (+ quantized) + model card +
usage snippets for each API. Layout::

    checkpoint/   merged transformers checkpoint (safetensors)
    adapter/      LoRA adapter, when one was given
    onnx/         fp32 export (model.onnx + tokenizer); onnx-int8/, onnx-int4/ when accepted
    gguf/         model-q8_0.gguf, model-q4_k_m.gguf (llama.cpp) and an Ollama Modelfile
    task.json     the TaskSpec (the server loads it with the model)
    MODEL_CARD.md, model_card.json
    usage/        tritonclient_grpc.py, openai_client.py, distillery_predict.py, curl.sh; run_llama_cpp.py,
                  ollama.sh when there is a GGUF
"""

from __future__ import annotations

import json
from pathlib import Path

from services.common.taskspec import TaskSpec

VARIANT_DIRS = {"none": "onnx", "int8": "onnx-int8", "int4": "onnx-int4"}


def variant_dir(bundle: Path, quantization: str) -> Path:
    return Path(bundle) / VARIANT_DIRS[quantization]


def write_task(bundle: Path, spec: TaskSpec) -> None:
    (Path(bundle) / "task.json").write_text(json.dumps(spec.to_dict(), indent=2))


def read_task(bundle: Path) -> TaskSpec | None:
    for candidate in (Path(bundle) / "task.json", Path(bundle).parent / "task.json"):
        if candidate.exists():
            return TaskSpec.from_dict(json.loads(candidate.read_text()))
    return None


def write_usage(bundle: Path, model_name: str, example_input: str) -> None:
    usage = Path(bundle) / "usage"
    usage.mkdir(parents=True, exist_ok=True)
    text = json.dumps(example_input)
    (usage / "tritonclient_grpc.py").write_text(f'''"""Open Inference Protocol v2 over gRPC (KServe / Triton clients work unchanged)."""
import numpy as np
import tritonclient.grpc as grpcclient

client = grpcclient.InferenceServerClient("localhost:50055")
text = grpcclient.InferInput("text", [1], "BYTES")
text.set_data_from_numpy(np.array([{text}.encode()], dtype=np.object_))
result = client.infer("{model_name}", [text], outputs=[grpcclient.InferRequestedOutput("output")])
print(result.as_numpy("output")[0].decode())
''')
    (usage / "openai_client.py").write_text(f'''"""OpenAI-compatible HTTP API (the openai package works unchanged)."""
from openai import OpenAI

client = OpenAI(base_url="http://localhost:8000/v1", api_key="unused")
reply = client.chat.completions.create(model="{model_name}",
                                       messages=[{{"role": "user", "content": {text}}}])
print(reply.choices[0].message.content)
''')
    (usage / "distillery_predict.py").write_text(f'''"""Typed gRPC: distillery.v1.ServingService/Predict."""
import grpc
from distillery.v1 import serving_pb2, serving_pb2_grpc

stub = serving_pb2_grpc.ServingServiceStub(grpc.insecure_channel("localhost:50055"))
reply = stub.Predict(serving_pb2.PredictRequest(model_name="{model_name}", inputs=[{text}]))
print(reply.predictions[0].output)
''')
    body = json.dumps({"model": model_name, "messages": [{"role": "user", "content": example_input}]})
    predict = json.dumps({"model_name": model_name, "inputs": [example_input]})
    (usage / "curl.sh").write_text("\n".join([
        "#!/bin/sh",
        "# OpenAI-compatible HTTP",
        "curl -s http://localhost:8000/v1/chat/completions -H 'Content-Type: application/json' -d " + _sh(body),
        "# typed gRPC (grpcurl; the server has reflection)",
        "grpcurl -plaintext -d " + _sh(predict) + " localhost:50055 distillery.v1.ServingService/Predict",
        "",
    ]))


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
