"""The download bundle's GGUF files on a real student: SmolLM2-135M LoRA-tuned on the news-topic
seeds, exported by the real export path with llama.cpp's own converter (Q8_0) and quantizer
(Q4_K_M), then run in real llama.cpp (llama-cpp-python, built from source into .venvs/llamacpp on
first use by scripts/build-llama-cpp.sh: ~8 minutes, hence slow) through the bundle's own
usage/run_llama_cpp.py. It must give the labels the ONNX student gives on the task's test inputs.
The Ollama Modelfile carries the student's prompt and stop tokens."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from services.common.taskspec import load_task
from services.serving.gguf import DEFAULT_RUNTIME, GgufTools
from services.serving.handler import run_export
from services.serving.runtime import OnnxGenerator
from services.serving.testing import finetune

REPO = Path(__file__).resolve().parents[2]
TEST_INPUTS = 40
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama_cpp_python() -> Path:
    """llama-cpp-python built for this CPU (once per machine; the script is idempotent)."""
    if os.environ.get("DISTILLERY_LLAMACPP_PYTHON"):
        return Path(os.environ["DISTILLERY_LLAMACPP_PYTHON"])
    subprocess.run([str(REPO / "scripts" / "build-llama-cpp.sh"), "env"], check=True, cwd=REPO, timeout=3600)
    return DEFAULT_RUNTIME


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, materialized, llama_cpp_python: Path):
    bundle = load_task(REPO / "examples" / "news-topic")
    root = tmp_path_factory.mktemp("gguf")
    seeds = [(e.input, str(e.output)) for e in bundle.seeds]
    student = finetune(materialized("smollm2-135m-instruct"), root / "student", bundle.spec, seeds, steps=80,
                       lr=1e-3)
    inputs = [(e.input, "") for e in bundle.test[:TEST_INPUTS]]
    tools = GgufTools.from_env()  # DISTILLERY_LLAMACPP_PYTHON, else the environment the fixture built
    assert not tools.missing_converter() and tools.runtime == llama_cpp_python, (tools, llama_cpp_python)
    outcome = run_export(student, bundle.spec, root / "work", [], model_name="news-topic", parity_inputs=inputs,
                         gguf=["q8_0", "q4_k_m"])
    return bundle, outcome, inputs


def _llama_cpp_labels(python: Path, bundle_dir: Path, gguf: str, texts: list[str]) -> list[str]:
    done = subprocess.run([str(python), str(bundle_dir / "usage" / "run_llama_cpp.py"), *texts], capture_output=True,
                          text=True, timeout=1800, env={**os.environ, "GGUF": gguf})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_the_bundle_has_q8_and_q4_k_m_ggufs_and_a_modelfile(exported) -> None:
    bundle, outcome, _ = exported
    files = {g["quantization"]: g for g in outcome.gguf}
    assert set(files) == {"q8_0", "q4_k_m"}, files
    for entry in files.values():
        assert not entry["error"], entry
        path = outcome.bundle / entry["path"]
        assert path.read_bytes()[:4] == b"GGUF" and path.stat().st_size == entry["size_bytes"]
    assert files["q4_k_m"]["size_bytes"] < files["q8_0"]["size_bytes"]
    assert not (outcome.bundle / "gguf" / "model-f16.gguf").exists()  # the quantizer's input was dropped
    modelfile = (outcome.bundle / "gguf" / "Modelfile").read_text()
    assert "FROM ./model-q4_k_m.gguf" in modelfile
    assert "{{ .System }}" in modelfile and "{{ .Prompt }}" in modelfile and "<|im_start|>assistant" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "Answer with exactly one label" in modelfile
    card = json.loads((outcome.bundle / "model_card.json").read_text())
    assert {g["quantization"] for g in card["gguf"]} == {"q8_0", "q4_k_m"}
    assert "run_llama_cpp.py" in (outcome.bundle / "MODEL_CARD.md").read_text()


def test_llama_cpp_gives_the_labels_of_the_onnx_student(exported, llama_cpp_python: Path) -> None:
    bundle, outcome, inputs = exported
    texts = [text for text, _ in inputs]
    onnx = [p.output for p in OnnxGenerator.from_dir(outcome.bundle / "onnx", bundle.spec).predict(texts)]
    q8 = _llama_cpp_labels(llama_cpp_python, outcome.bundle, "model-q8_0.gguf", texts)
    q4 = _llama_cpp_labels(llama_cpp_python, outcome.bundle, "model-q4_k_m.gguf", texts)
    assert len(q8) == len(q4) == len(texts)
    assert set(q8) <= set(bundle.spec.labels) and set(q4) <= set(bundle.spec.labels)
    agree_q8 = sum(a == b for a, b in zip(onnx, q8)) / len(texts)
    agree_q4 = sum(a == b for a, b in zip(onnx, q4)) / len(texts)
    print(f"label agreement with the ONNX student on {len(texts)} test inputs: Q8_0 {agree_q8:.3f}, "
          f"Q4_K_M {agree_q4:.3f}")
    # Q8_0 is near-lossless: the same labels. Q4_K_M (4-bit blocks, 5-bit fallbacks where SmolLM2's
    # 576-wide rows do not fit 256-blocks) may flip close calls.
    assert agree_q8 >= 0.95, (onnx, q8)
    assert agree_q4 >= 0.85, (onnx, q4)
    # The student learnt the task (the comparison is between two working students, not two broken ones).
    gold = [str(e.output) for e in bundle.test[:TEST_INPUTS]]
    assert sum(a == b for a, b in zip(onnx, gold)) / len(texts) >= 0.6
