"""The serving core on a real fine-tuned tiny student exported to ONNX: the hand decode loop,
constrained label scoring, batching, parity, the repository, the bundle and the model card."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    UnsafeModelError,
)
from services.common.taskspec import TaskSpec
from services.serving.batching import DynamicBatcher
from services.serving.export import check_checkpoint
from services.serving.handler import run_export
from services.serving.oip_servicer import decode_bytes_tensor, encode_bytes_tensor
from services.serving.parity import TorchReference, check_parity
from services.serving.repository import ModelRepository
from services.serving.runtime import LabelTrie, OnnxGenerator, json_complete
from services.serving.testing import SENTIMENT, SENTIMENT_EXAMPLES, cached_tiny_student

QA = TaskSpec(name="qa", type="qa-closed-book", description="Answer the question.")
TEXTS = [text for text, _ in SENTIMENT_EXAMPLES]


@pytest.fixture(scope="module")
def student(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    return cached_tiny_student(request.config.cache.mkdir("serving-tiny-student"))


@pytest.fixture(scope="module")
def exported(student, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("serving-export")
    # fp32 only: the quantized variants are exported (and refused or accepted) in the integration test.
    return run_export(student[0], SENTIMENT, work, [], model_name="sentiment", adapter=student[1])


@pytest.fixture(scope="module")
def reference(student) -> TorchReference:
    return TorchReference(student[0])


def test_export_parity_card_and_bundle(exported):
    variants = {v.quantization: v for v in exported.variants}
    assert variants["none"].accepted and variants["none"].parity["agreement"] == 1.0
    assert variants["none"].parity["max_prob_diff"] < 1e-4
    card = json.loads((exported.bundle / "model_card.json").read_text())
    assert card["name"] == "sentiment" and card["task"]["labels"] == SENTIMENT.labels
    assert "label_agreement" in (exported.bundle / "MODEL_CARD.md").read_text()
    assert (exported.bundle / "adapter" / "adapter_model.safetensors").exists()
    assert (exported.bundle / "checkpoint" / "model.safetensors").exists()
    compile((exported.bundle / "usage" / "openai_client.py").read_text(), "openai_client.py", "exec")


def test_classification_matches_pytorch_and_learned_the_task(exported, reference):
    generator = OnnxGenerator.from_dir(exported.bundle, SENTIMENT)
    assert not generator.trie.one_step  # "negative"/"neutral" share their first token: the two-step path
    report = check_parity(reference, generator, SENTIMENT, [(t, "") for t in TEXTS])
    assert report.agreement == 1.0 and report.max_prob_diff < 1e-4
    predictions = generator.predict(TEXTS)
    assert sum(p.output == label for p, (_, label) in zip(predictions, SENTIMENT_EXAMPLES)) >= 7
    for p in predictions:
        assert abs(sum(p.label_probabilities.values()) - 1) < 1e-9
    two = TaskSpec(name="two", type="classification", description=SENTIMENT.description,
                   labels=["positive", "negative"])
    fast = OnnxGenerator.from_dir(exported.bundle, two)
    assert fast.trie.one_step
    assert check_parity(reference, fast, two, [(t, "") for t in TEXTS[:4]]).max_prob_diff < 1e-4


def test_batched_generation_equals_one_by_one_and_pytorch(exported, reference):
    generator = OnnxGenerator.from_dir(exported.bundle, QA)
    batch = generator.predict(TEXTS[:4], max_tokens=8)
    single = [generator.predict([t], max_tokens=8)[0] for t in TEXTS[:4]]
    assert [p.raw for p in batch] == [p.raw for p in single]
    assert all(p.completion_tokens <= 8 for p in batch)
    assert check_parity(reference, generator, QA, [(t, "") for t in TEXTS[:3]]).agreement == 1.0
    streamed = "".join(generator.stream(TEXTS[0], max_tokens=8))
    assert streamed == single[0].raw


def test_request_limits(exported):
    generator = OnnxGenerator.from_dir(exported.bundle, QA)
    with pytest.raises(InvalidArgument, match="empty"):
        generator.predict([" "])
    with pytest.raises(InvalidArgument, match="max_tokens"):
        generator.predict(["hi"], max_tokens=10**6)
    with pytest.raises(InvalidArgument, match="limit"):
        generator.predict(["hi"] * 1000)
    with pytest.raises(InvalidArgument, match="contexts"):
        generator.predict(["a", "b"], ["only one"])
    with pytest.raises(NotFound):
        OnnxGenerator.from_dir(exported.bundle / "missing", QA)


def test_export_refuses_a_model_that_does_not_match(student, exported, tmp_path):
    # An ONNX export of the fine-tuned student checked against its (different) base model.
    work = tmp_path / "work"
    (work / "bundle").mkdir(parents=True)
    import shutil

    shutil.copytree(exported.bundle / "onnx", work / "bundle" / "onnx")
    with pytest.raises(FailedPrecondition, match=r"refused: top1_token_agreement 0\.\d+ < min_parity 0\.900 on 2 inputs"):
        run_export(student[0].parent / "base", QA, work, min_parity=0.9, parity_inputs=[(TEXTS[0], ""), (TEXTS[3], "")])


def test_checkpoint_checks(tmp_path):
    with pytest.raises(NotFound):
        check_checkpoint(tmp_path / "none")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(UnsafeModelError, match="pickle"):
        check_checkpoint(tmp_path)


def test_label_trie_probabilities_are_the_constrained_product():
    trie = LabelTrie(["ab", "ac", "d"], [[1, 2, 9], [1, 3, 9], [4, 9]])
    vocab = 10
    rng = np.random.default_rng(0)
    steps = [rng.normal(size=(len(s), vocab)) for s in trie.sequences]
    # Logits depend only on the prefix: labels that share a prefix share its rows.
    steps[1][0] = steps[2][0] = steps[0][0]
    steps[1][1] = steps[0][1]

    def soft(row, allowed, pick):
        e = np.exp(row[allowed] - row[allowed].max())
        return e[allowed.index(pick)] / e.sum()

    expected = {"ab": soft(steps[0][0], [1, 4], 1) * soft(steps[0][1], [2, 3], 2),
                "ac": soft(steps[0][0], [1, 4], 1) * soft(steps[0][1], [2, 3], 3),
                "d": soft(steps[0][0], [1, 4], 4)}
    got = trie.probabilities(steps)
    for label, value in expected.items():
        assert got[label] == pytest.approx(value)
    with pytest.raises(InvalidArgument):
        LabelTrie(["a", "b"], [[1, 9], [1, 9]])


def test_json_complete():
    assert json_complete('Sure: {"a": [1, 2]} and more')
    assert json_complete("[]")
    assert not json_complete('{"a": [1, 2')
    assert not json_complete("no json here")


def test_dynamic_batcher_batches_and_propagates_errors():
    seen: list[int] = []

    def run(items):
        time.sleep(0.05)
        seen.append(len(items))
        if any(item[0] == "boom" for item in items):
            raise ValueError("boom")
        return [item[0].upper() for item in items]

    batcher = DynamicBatcher(run, max_batch=8, max_wait_ms=20)
    futures = []
    threads = [threading.Thread(target=lambda i=i: futures.append(batcher.submit((f"x{i}", True))))
               for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(f.result(timeout=10) for f in futures) == sorted(f"X{i}" for i in range(12))
    assert len(seen) < 12 and max(seen) <= 8
    with pytest.raises(ValueError, match="boom"):
        batcher.submit(("boom", True)).result(timeout=10)
    assert batcher.submit(("ok", False)).result(timeout=10) == "OK"  # the worker survived
    batcher.close()
    with pytest.raises(Unavailable, match="unloaded"):
        batcher.submit(("late", True)).result(timeout=10)


def test_dynamic_batcher_queue_is_bounded():
    release = threading.Event()

    def run(items):
        release.wait(10)  # the worker is busy: everything else waits in the queue
        return [item[0] for item in items]

    batcher = DynamicBatcher(run, max_batch=1, max_wait_ms=0, max_queue=3)
    first = batcher.submit(("a", True))
    waiting = [batcher.submit((f"w{i}", True)) for i in range(2)]  # with `first`: 3 waiting at most
    with pytest.raises(ResourceExhausted, match="3 requests are already queued or running"):
        batcher.submit(("over", True))
    release.set()
    assert [f.result(timeout=10) for f in [first, *waiting]] == ["a", "w0", "w1"]
    assert batcher.submit(("again", True)).result(timeout=10) == "again"  # answered slots are free again
    batcher.close()


def test_bytes_tensor_roundtrip():
    items = ["héllo".encode(), b"", b"x" * 300]
    assert decode_bytes_tensor(encode_bytes_tensor(items)) == items
    with pytest.raises(InvalidArgument, match="truncated|past the end"):
        decode_bytes_tensor(b"\x05\x00\x00\x00ab")


def test_repository_versions_and_restore(exported, tmp_path):
    state = tmp_path / "models.json"
    repo = ModelRepository(state)
    repo.load("s", exported.bundle)
    repo.load("s", exported.bundle / "onnx", version="2")
    assert repo.versions("s") == ["1", "2"] and repo.get("s").version == "2"
    assert repo.get("s", "1").predict([TEXTS[0]])[0].output == "positive"
    with pytest.raises(NotFound, match="not loaded"):
        repo.get("other")
    with pytest.raises(NotFound):
        repo.load("t", exported.bundle, quantization="int8")  # not exported in this bundle
    with pytest.raises(InvalidArgument):
        repo.load("a/b", exported.bundle)
    repo.unload("s", "2")
    repo.close()
    again = ModelRepository(state)
    assert again.restore() == ["s:1"]
    assert again.get("s").version == "1"
    again.close()


def test_int8_keeps_outlier_projections_and_end_layers_in_fp32(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from services.serving.quantize import cpu_has_vnni, int8_excluded_matmuls

    names = [f"/model/layers.{i}/{part}/MatMul" for i in range(4)
             for part in ("self_attn/q_proj", "self_attn/o_proj", "mlp/up_proj", "mlp/down_proj")] + ["/lm_head/MatMul"]
    nodes = [helper.make_node("MatMul", ["x", "w"], [f"y{i}"], name=n) for i, n in enumerate(names)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
                                            helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, 2]) for i in range(len(names))])
    onnx.save(helper.make_model(graph), str(tmp_path / "model.onnx"))
    excluded = set(int8_excluded_matmuls(tmp_path / "model.onnx"))
    quantized = [n for n in names if n not in excluded]
    # q/k/v/gate/up of the middle layers (and the head) are int8; o_proj, down_proj and layers 0 and 3 stay fp32.
    assert quantized == ["/model/layers.1/self_attn/q_proj/MatMul", "/model/layers.1/mlp/up_proj/MatMul",
                         "/model/layers.2/self_attn/q_proj/MatMul", "/model/layers.2/mlp/up_proj/MatMul",
                         "/lm_head/MatMul"]
    (tmp_path / "cpuinfo").write_text("flags\t: fpu avx2 avx512f avx512_vnni\n")
    assert cpu_has_vnni(tmp_path / "cpuinfo")
    (tmp_path / "cpuinfo").write_text("flags\t: fpu avx2\n")
    assert not cpu_has_vnni(tmp_path / "cpuinfo") and not cpu_has_vnni(tmp_path / "missing")
