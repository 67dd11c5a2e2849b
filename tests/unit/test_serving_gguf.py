"""The GGUF part of the bundle without llama.cpp's compiled tools (those run for real in the slow
tests/integration/test_gguf_export.py): a missing tool is reported with what to run, never raised;
the Ollama Modelfile is the student's own chat template around the task's system prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.enums import gguf_types
from services.common.errors import InvalidArgument
from services.common.student_format import render_prompt, system_prompt
from services.serving.gguf import GgufTools, add_to_bundle, prompt_template, write_modelfile
from services.serving.testing import SENTIMENT, cached_tiny_student


@pytest.fixture(scope="module")
def student(request: pytest.FixtureRequest) -> Path:
    return cached_tiny_student(request.config.cache.mkdir("serving-tiny-student"))[0]


def test_missing_tools_are_reported_not_raised(student: Path, tmp_path: Path) -> None:
    tools = GgufTools(tmp_path / "no-llama.cpp", tmp_path / "no-env" / "bin" / "python")
    files = add_to_bundle(student, tmp_path / "bundle", SENTIMENT, ["q8_0", "q4_k_m"], "sentiment", "great", tools)
    assert [f.quantization for f in files] == ["q8_0", "q4_k_m"]
    assert all(f.path is None for f in files)
    assert "scripts/build-llama-cpp.sh source" in files[0].error and "DISTILLERY_LLAMA_CPP_DIR" in files[0].error
    assert not (tmp_path / "bundle" / "gguf").exists() and not (tmp_path / "bundle" / "usage").exists()


def test_the_modelfile_is_the_students_prompt(student: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    template, system, stops = prompt_template(student, SENTIMENT)
    assert system == system_prompt(SENTIMENT) and "<|im_end|>" in stops
    path = tmp_path / "Modelfile"
    write_modelfile(path, "model-q8_0.gguf", template, system, stops)
    text = path.read_text()
    assert text.splitlines()[1] == "FROM ./model-q8_0.gguf"
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0" in text
    # Ollama fills {{ .System }} and {{ .Prompt }}: the result is exactly the prompt training rendered.
    go_template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    filled = go_template.replace("{{ .System }}", system).replace("{{ .Prompt }}", "It broke on day two")
    assert filled == render_prompt(AutoTokenizer.from_pretrained(str(student)), SENTIMENT, "It broke on day two")


def test_gguf_types_are_checked() -> None:
    assert gguf_types(["Q8_0", "q4_k_m", "q8_0"]) == ("q8_0", "q4_k_m")
    from distillery.v1 import serving_pb2

    request = serving_pb2.StartExportRequest()  # a protobuf repeated field, empty and filled
    assert gguf_types(request.gguf) == ()
    request.gguf.extend(["q4_k_m"])
    assert gguf_types(request.gguf) == ("q4_k_m",)
    with pytest.raises(InvalidArgument, match="'q2_k' is not a GGUF type the export makes; choose from q8_0"):
        gguf_types(["q2_k"])
    with pytest.raises(InvalidArgument, match="must be a list"):
        gguf_types("q8_0")
