"""The real serving process (``python -m services.serving``) on loopback: export a fine-tuned tiny
student through StartExport (ONNX fp32 + int8 + 4-bit, parity, bundle), then ask it the same
questions through the typed RPC, the openai client and tritonclient (in a subprocess: its
compiled stubs register the same ``inference.*`` protobuf names as ours) and get the same answers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import grpc
import pytest
from distillery.v1 import common_pb2, serving_pb2, serving_pb2_grpc
from inference import grpc_predict_v2_pb2 as oip
from inference import grpc_predict_v2_pb2_grpc as oip_grpc

from services.common.artifacts import sha256_file
from services.common.client import OperationsClient
from services.common.convert import task_to_proto
from services.serving.testing import SENTIMENT, SENTIMENT_EXAMPLES, cached_tiny_student
from tests.helpers.load import hammer
from tests.helpers.services import free_port, start_service_process

INPUTS = [text for text, _ in SENTIMENT_EXAMPLES[:4]] + ["The package was left at the door."]

TRITON_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    address, model, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    texts = json.loads(sys.stdin.read())
    client = grpcclient.InferenceServerClient(address)
    report = {"live": client.is_server_live(), "ready": client.is_server_ready(),
              "model_ready": client.is_model_ready(model),
              "server": client.get_server_metadata(as_json=True)["name"],
              "inputs": [i["name"] for i in client.get_model_metadata(model, as_json=True)["inputs"]]}
    tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    params = {"max_tokens": max_tokens, "unconstrained": True} if max_tokens else {}
    result = client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput("output"),
                                                    grpcclient.InferRequestedOutput("label_probabilities")],
                          parameters=params or None)
    report["outputs"] = [o.decode() for o in result.as_numpy("output")]
    report["probs"] = [json.loads(o) for o in result.as_numpy("label_probabilities")]
    try:
        client.infer("no-such-model", [tensor])
    except InferenceServerException as exc:
        report["unknown_status"] = exc.status()
    print(json.dumps(report))
''')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    merged, adapter = cached_tiny_student(request.config.cache.mkdir("serving-tiny-student"))
    home = tmp_path_factory.mktemp("serving-home")
    http_port = free_port()
    handle = start_service_process("serving", None, home, extra_env={
        "DISTILLERY_HTTP_PORT": str(http_port), "DISTILLERY_SERVING_THREADS": "1",
        "DISTILLERY_SERVING_MAX_INPUT_TOKENS": "512",
        # the cached tiny student lives outside the store: name its folder as an allowed root
        "DISTILLERY_MODEL_ROOTS": str(merged.parent.resolve())})
    channel = handle.channel()
    try:  # a failed export must not leave the service process behind
        stub = serving_pb2_grpc.ServingServiceStub(channel)
        operation = stub.StartExport(serving_pb2.StartExportRequest(
            task=task_to_proto(SENTIMENT), model=common_pb2.ModelRef(uri=str(merged)),
            adapter=common_pb2.ModelRef(uri=str(adapter)),
            quantizations=[serving_pb2.QUANTIZATION_INT8, serving_pb2.QUANTIZATION_INT4],
            model_name="sentiment", model_version="1"), timeout=30)
        done = OperationsClient(channel).wait(operation.name, timeout=900, poll=5)
        if done.error.code:
            pytest.fail(f"export failed: {done.error.message}\n{handle.log_tail()}")
        result = OperationsClient.result(done, serving_pb2.ExportResult)
        yield {"handle": handle, "channel": channel, "stub": stub, "http": f"http://127.0.0.1:{http_port}/v1",
               "result": result, "home": home}
    finally:
        channel.close()
        handle.stop()


def _openai(served):
    from openai import OpenAI

    return OpenAI(base_url=served["http"], api_key="unused", max_retries=0)


def _triton(served, texts, max_tokens=0):
    out = subprocess.run([sys.executable, "-c", TRITON_SCRIPT, served["handle"].address, "sentiment", str(max_tokens)],
                         input=json.dumps(texts), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_export_writes_bundle_with_parity_and_card(served):
    result = served["result"]
    kinds = {v.quantization: v for v in result.variants}
    assert kinds[serving_pb2.QUANTIZATION_NONE].accepted and kinds[serving_pb2.QUANTIZATION_NONE].parity == 1.0
    assert set(kinds) == {serving_pb2.QUANTIZATION_NONE, serving_pb2.QUANTIZATION_INT8, serving_pb2.QUANTIZATION_INT4}
    bundle = Path(urlparse(result.bundle.uri).path)
    for rel in ("checkpoint/model.safetensors", "adapter/adapter_model.safetensors", "onnx/model.onnx",
                "MODEL_CARD.md", "model_card.json", "task.json", "usage/tritonclient_grpc.py",
                "usage/openai_client.py", "usage/distillery_predict.py", "usage/curl.sh", "MANIFEST.json"):
        assert (bundle / rel).exists(), rel
    card = json.loads((bundle / "model_card.json").read_text())
    assert {v["quantization"] for v in card["variants"]} == {"none", "int8", "int4"}
    assert all(v["parity"]["metric"] == "label_agreement" for v in card["variants"])
    assert "| none | label_agreement | 1.000 |" in (bundle / "MODEL_CARD.md").read_text()
    for v in result.variants:
        if v.accepted:
            assert v.onnx.sha256 and v.onnx.size > 0
            onnx = Path(urlparse(v.onnx.uri).path)
            assert sha256_file(onnx) == v.onnx.sha256 and onnx.stat().st_size == v.onnx.size
    # The checkpoint came from a folder outside the store (its owner may rewrite it): copied, not
    # linked. The export's work copy is gone once the store holds the bundle.
    assert (bundle / "checkpoint" / "model.safetensors").stat().st_nlink == 1
    assert not list((served["home"] / "work" / "serving").glob("*/bundle"))


def test_same_answers_through_typed_rpc_openai_and_tritonclient(served):
    typed = served["stub"].Predict(serving_pb2.PredictRequest(model_name="sentiment", inputs=INPUTS), timeout=60)
    typed_out = [p.output for p in typed.predictions]
    assert all(out in SENTIMENT.labels for out in typed_out)
    assert all(abs(sum(p.label_probabilities.values()) - 1) < 1e-6 for p in typed.predictions)
    client = _openai(served)
    openai_out = [client.chat.completions.create(model="sentiment", messages=[
        {"role": "system", "content": "ignored: the task's own prompt is used"},
        {"role": "user", "content": text}]).choices[0].message.content for text in INPUTS]
    triton = _triton(served, INPUTS)
    assert triton["live"] and triton["ready"] and triton["model_ready"]
    assert triton["server"] == "distillery-serving" and triton["inputs"] == ["text", "context"]
    assert typed_out == openai_out == triton["outputs"]
    assert triton["unknown_status"] == "StatusCode.NOT_FOUND"
    # The fine-tuned student learned the task (it saw these examples in training).
    expected = [label for _, label in SENTIMENT_EXAMPLES[:4]]
    assert sum(a == b for a, b in zip(typed_out, expected)) >= 3


def test_free_text_is_identical_across_apis_too(served):
    texts = INPUTS[:2]
    typed = served["stub"].Predict(serving_pb2.PredictRequest(model_name="sentiment", inputs=texts, max_tokens=6,
                                                              unconstrained=True), timeout=60)
    client = _openai(served)
    openai_out = [client.chat.completions.create(model="sentiment", max_tokens=6, extra_body={"unconstrained": True},
                                                 messages=[{"role": "user", "content": t}]).choices[0].message.content
                  for t in texts]
    assert [p.output for p in typed.predictions] == openai_out == _triton(served, texts, max_tokens=6)["outputs"]


def test_openai_models_streaming_and_errors(served):
    import openai

    client = _openai(served)
    ids = {m.id for m in client.models.list().data}
    assert {"sentiment", "sentiment:1"} <= ids
    chunks = list(client.chat.completions.create(model="sentiment", stream=True,
                                                 messages=[{"role": "user", "content": INPUTS[0]}]))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    plain = client.chat.completions.create(model="sentiment", messages=[{"role": "user", "content": INPUTS[0]}])
    assert streamed == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    with pytest.raises(openai.NotFoundError, match="not loaded"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model="sentiment", max_tokens=10**6, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="user message"):
        client.chat.completions.create(model="sentiment", messages=[{"role": "system", "content": "x"}])


def test_typed_stream_and_grpc_errors(served):
    stub = served["stub"]
    parts = list(stub.PredictStream(serving_pb2.PredictStreamRequest(model_name="sentiment", input=INPUTS[0]),
                                    timeout=60))
    assert parts[-1].finished and "".join(p.delta for p in parts) in SENTIMENT.labels
    cases = [
        (serving_pb2.PredictRequest(model_name="nope", inputs=["x"]), grpc.StatusCode.NOT_FOUND, "not loaded"),
        (serving_pb2.PredictRequest(model_name="sentiment"), grpc.StatusCode.INVALID_ARGUMENT, "no inputs"),
        (serving_pb2.PredictRequest(model_name="sentiment", inputs=["  "]), grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        (serving_pb2.PredictRequest(model_name="sentiment", inputs=["x"], max_tokens=999999),
         grpc.StatusCode.INVALID_ARGUMENT, "max_tokens"),
        (serving_pb2.PredictRequest(model_name="sentiment", inputs=["word " * 2000]),
         grpc.StatusCode.INVALID_ARGUMENT, "tokens long"),
        (serving_pb2.PredictRequest(model_name="sentiment", inputs=["x"] * 100), grpc.StatusCode.INVALID_ARGUMENT,
         "limit"),
    ]
    for message, code, text in cases:
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(message, timeout=30)
        assert info.value.code() == code and text in info.value.details(), info.value.details()
    inference = oip_grpc.GRPCInferenceServiceStub(served["channel"])
    bad = oip.ModelInferRequest(model_name="sentiment", inputs=[
        oip.ModelInferRequest.InferInputTensor(name="text", datatype="INT32", shape=[1])])
    with pytest.raises(grpc.RpcError) as info:
        inference.ModelInfer(bad, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "BYTES" in info.value.details()
    truncated = oip.ModelInferRequest(model_name="sentiment", raw_input_contents=[b"\x09\x00\x00\x00ab"], inputs=[
        oip.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1])])
    with pytest.raises(grpc.RpcError) as info:
        inference.ModelInfer(truncated, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The plain (non-raw) form, as grpcurl sends it.
    plain = inference.ModelInfer(oip.ModelInferRequest(model_name="sentiment", inputs=[
        oip.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1],
                                               contents=oip.InferTensorContents(bytes_contents=[INPUTS[0].encode()]))]),
        timeout=30)
    assert plain.outputs[0].contents.bytes_contents[0].decode() in SENTIMENT.labels


def test_several_students_load_unload_list(served):
    stub = served["stub"]
    bundle = served["result"].bundle
    accepted = [v.quantization for v in served["result"].variants
                if v.accepted and v.quantization != serving_pb2.QUANTIZATION_NONE]
    refused = [v for v in served["result"].variants if not v.accepted]
    for variant in refused:  # refused variants say why, with the numbers, and are not in the bundle
        assert "label_agreement" in variant.reason and "< min_parity 0.900" in variant.reason
        with pytest.raises(grpc.RpcError) as info:
            stub.LoadModel(serving_pb2.LoadModelRequest(name="refused", bundle=bundle,
                                                        quantization=variant.quantization), timeout=120)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    loaded = stub.LoadModel(serving_pb2.LoadModelRequest(name="sentiment", version="2", bundle=bundle), timeout=120)
    assert loaded.model.ready and loaded.model.quantization == serving_pb2.QUANTIZATION_NONE
    quantized = accepted[0] if accepted else serving_pb2.QUANTIZATION_NONE
    info = stub.LoadModel(serving_pb2.LoadModelRequest(name="sentiment-int8", bundle=bundle, quantization=quantized),
                          timeout=120)
    assert info.model.quantization == (quantized or serving_pb2.QUANTIZATION_NONE)
    models = {(m.name, m.version): m for m in stub.ListModels(serving_pb2.ListModelsRequest(), timeout=10).models}
    assert {("sentiment", "1"), ("sentiment", "2"), ("sentiment-int8", "1")} <= set(models)
    assert models[("sentiment", "1")].task_type == common_pb2.TASK_TYPE_CLASSIFICATION
    latest = stub.Predict(serving_pb2.PredictRequest(model_name="sentiment", inputs=INPUTS[:2]), timeout=60)
    assert latest.model_version == "2"
    other = stub.Predict(serving_pb2.PredictRequest(model_name="sentiment-int8", inputs=INPUTS[:2]), timeout=60)
    assert all(p.output in SENTIMENT.labels for p in other.predictions)
    stub.UnloadModel(serving_pb2.UnloadModelRequest(name="sentiment", version="2"), timeout=30)
    stub.UnloadModel(serving_pb2.UnloadModelRequest(name="sentiment-int8"), timeout=30)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(serving_pb2.PredictRequest(model_name="sentiment-int8", inputs=["x"]), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.LoadModel(serving_pb2.LoadModelRequest(name="x", bundle=common_pb2.ArtifactRef(uri="/no/such/dir")),
                       timeout=30)
    # outside the store, the model cache and DISTILLERY_MODEL_ROOTS: refused before it is looked at
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "DISTILLERY_MODEL_ROOTS" in info.value.details()
    assert stub.Predict(serving_pb2.PredictRequest(model_name="sentiment", inputs=["x"]),
                        timeout=30).model_version == "1"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _hammer(served, clients: int, seconds: float | None, requests_each: int = 2) -> tuple[int, list[str]]:
    """``clients`` threads alternating typed Predict and OpenAI calls; returns (calls, errors)."""
    stub, client = served["stub"], _openai(served)

    def call(i: int, n: int) -> None:
        text = INPUTS[(i + n) % len(INPUTS)]
        if (i + n) % 2:
            out = stub.Predict(serving_pb2.PredictRequest(model_name="sentiment", inputs=[text]),
                               timeout=120).predictions[0].output
        else:
            out = client.chat.completions.create(model="sentiment", messages=[
                {"role": "user", "content": text}]).choices[0].message.content
        assert out in SENTIMENT.labels, out

    return hammer(call, clients, seconds, requests_each)


def test_32_concurrent_clients_no_errors(served):
    calls, errors = _hammer(served, 32, None, requests_each=2)
    assert calls == 64 and errors == []


@pytest.mark.slow
def test_32_clients_for_60_seconds_flat_memory(served):
    pid = served["handle"].process.pid
    _hammer(served, 32, 5)  # warm-up: allocator pools, thread pools
    before = _rss_kb(pid)
    calls, errors = _hammer(served, 32, 60)
    after = _rss_kb(pid)
    assert errors == [] and calls > 32
    assert after < before * 1.25 + 50_000, (before, after)
