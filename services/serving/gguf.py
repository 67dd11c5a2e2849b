"""The student as GGUF, for llama.cpp and Ollama (the runtimes CPU users already have): llama.cpp's
own converter (``convert_hf_to_gguf.py``) writes the merged checkpoint as Q8_0 (or F16), and
llama.cpp's quantizer (through llama-cpp-python) makes Q4_K_M from it; an Ollama ``Modelfile``
carries the student's exact prompt (its chat template rendered with the task's system prompt) and
its stop tokens.

Why llama.cpp's own tools and not a converter of ours: the file format and its tokenizer metadata
follow llama.cpp's revisions; its converter is the reference and is what its users run. Both tools
come from one pinned llama.cpp revision (the one llama-cpp-python vendors;
scripts/build-llama-cpp.sh): ``make setup`` unpacks the converter (pure Python, run with this
service's interpreter); the quantizer needs the compiled library (``scripts/build-llama-cpp.sh env``,
~8 minutes, outside the default setup). A GGUF that cannot be made is reported with its reason and
never fails the export: the ONNX bundle is the product's served format."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from services.common import envs
from services.common.taskspec import TaskSpec

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
DEFAULT_SOURCE = REPO / ".cache" / "llama.cpp" / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}" / "vendor" / "llama.cpp"
DEFAULT_RUNTIME = REPO / ".venvs" / "llamacpp" / "bin" / "python"
DEFAULT_GGUF = ("q8_0", "q4_k_m")
MODELFILE_PREFERENCE = ("q4_k_m", "q8_0", "f16")  # the smallest file Ollama is pointed at
_SYSTEM, _USER = "\x00DISTILLERY-SYSTEM\x00", "\x00DISTILLERY-USER\x00"


@dataclass
class GgufTools:
    """Where llama.cpp's converter and quantizer are (DISTILLERY_LLAMA_CPP_DIR,
    DISTILLERY_LLAMACPP_PYTHON; defaults: what scripts/build-llama-cpp.sh makes)."""

    source: Path  # the llama.cpp tree: convert_hf_to_gguf.py and gguf-py/
    runtime: Path  # a Python with llama_cpp (llama-cpp-python) importable

    @classmethod
    def from_env(cls) -> GgufTools:
        return cls(envs.LLAMA_CPP_DIR.get() or DEFAULT_SOURCE, envs.LLAMACPP_PYTHON.get() or DEFAULT_RUNTIME)

    @property
    def converter(self) -> Path:
        return self.source / "convert_hf_to_gguf.py"

    def missing_converter(self) -> str:
        if self.converter.is_file():
            return ""
        return (f"llama.cpp's converter is not at {self.converter}: run `scripts/build-llama-cpp.sh source` "
                "(make setup does) or set DISTILLERY_LLAMA_CPP_DIR")

    def missing_quantizer(self) -> str:
        if self.runtime.is_file():
            return ""
        return (f"llama.cpp's quantizer needs llama-cpp-python at {self.runtime}: run `scripts/build-llama-cpp.sh env` "
                "(compiles llama.cpp, ~8 min) or set DISTILLERY_LLAMACPP_PYTHON")


@dataclass
class GgufFile:
    quantization: str
    path: Path | None  # None when it could not be made
    size_bytes: int = 0
    error: str = ""

    def to_dict(self, bundle: Path) -> dict[str, object]:
        return {"quantization": self.quantization, "size_bytes": self.size_bytes, "error": self.error,
                "path": str(self.path.relative_to(bundle)) if self.path is not None else ""}


def _run(command: list[str], what: str, timeout: float = 3600) -> str:
    """Run a llama.cpp tool; "" on success, else the reason (its last lines of output)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{what}: {exc}"
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return f"{what} exited with {done.returncode}: {tail}"
    return ""


def convert(checkpoint: Path, out: Path, outtype: str, tools: GgufTools) -> str:
    """llama.cpp's converter, run with this interpreter (it needs torch, transformers,
    sentencepiece: this service's environment has them). It puts the gguf-py of its own revision
    ahead of any installed gguf package itself."""
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    error = _run([sys.executable, str(tools.converter), str(checkpoint), "--outfile", str(partial),
                  "--outtype", outtype], "convert_hf_to_gguf.py")
    if not error:
        partial.rename(out)
    return error


_QUANTIZE = """
import ctypes, sys
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, sys.argv[3])
rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params))
sys.exit(rc)
"""


def quantize(source: Path, out: Path, ftype: str, tools: GgufTools) -> str:
    """llama.cpp's quantizer (llama_model_quantize) through llama-cpp-python."""
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    error = _run([str(tools.runtime), "-c", _QUANTIZE, str(source), str(partial), ftype], "llama_model_quantize")
    if not error:
        partial.rename(out)
    return error


def export_gguf(checkpoint: Path, out_dir: Path, kinds: tuple[str, ...] | list[str] = DEFAULT_GGUF,
                tools: GgufTools | None = None) -> list[GgufFile]:
    """``out_dir``/model-<kind>.gguf for each kind; one that is already there is kept (a resumed
    export). Never raises for a tool that is missing or fails: the file is reported with why."""
    tools = tools or GgufTools.from_env()
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[GgufFile] = []
    f16 = out_dir / "model-f16.gguf"
    for kind in kinds:
        target = out_dir / f"model-{kind}.gguf"
        if target.is_file():
            results.append(GgufFile(kind, target, target.stat().st_size))
            continue
        error = tools.missing_converter()
        if not error and kind in ("q8_0", "f16"):
            error = convert(checkpoint, target, kind, tools)
        elif not error:  # q4_k_m: quantized from an F16 file by llama.cpp's quantizer
            error = tools.missing_quantizer()
            if not error and not f16.is_file():
                error = convert(checkpoint, f16, "f16", tools)
            if not error:
                error = quantize(f16, target, "LLAMA_FTYPE_MOSTLY_Q4_K_M", tools)
        if error:
            log.warning("GGUF %s not made: %s", kind, error)
            results.append(GgufFile(kind, None, error=error))
        else:
            results.append(GgufFile(kind, target, target.stat().st_size))
    if "f16" not in kinds:
        f16.unlink(missing_ok=True)  # only the quantizer's input
    return results


def prompt_template(checkpoint: Path, spec: TaskSpec) -> tuple[str, str, list[str]]:
    """The student's prompt as a template: its chat template rendered around a system and a user
    placeholder (exactly what training rendered), the task's system prompt, and the stop strings."""
    from transformers import AutoTokenizer

    from services.common.decoding import eos_token_ids
    from services.common.student_format import system_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    rendered = tokenizer.apply_chat_template([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _USER}],
                                             tokenize=False, add_generation_prompt=True)
    stops = sorted({tokenizer.convert_ids_to_tokens(i) for i in eos_token_ids(tokenizer, checkpoint)} - {None})
    return rendered, system_prompt(spec), stops


def preferred(files: list[GgufFile]) -> GgufFile | None:
    """The file Ollama and the usage script are pointed at: the smallest that was made."""
    made = {f.quantization: f for f in files if f.path is not None}
    return next((made[kind] for kind in MODELFILE_PREFERENCE if kind in made), None)


def write_modelfile(path: Path, gguf_name: str, template: str, system: str, stops: list[str]) -> None:
    """An Ollama Modelfile: `ollama create <name> -f Modelfile`, then `ollama run <name> "<input>"`."""
    def quoted(text: str) -> str:
        return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'

    go_template = template.replace(_SYSTEM, "{{ .System }}").replace(_USER, "{{ .Prompt }}")
    lines = ["# A distilled student. Greedy decoding, the prompt it was trained on, its stop tokens.",
             f"FROM ./{gguf_name}", f"TEMPLATE {quoted(go_template)}", f"SYSTEM {quoted(system)}",
             "PARAMETER temperature 0"]
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stops]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_usage(bundle: Path, spec: TaskSpec, files: list[GgufFile], template: str, system: str,
                stops: list[str], model_name: str, example_input: str, max_tokens: int = 256) -> None:
    """usage/run_llama_cpp.py (llama-cpp-python, the student's exact prompt; a grammar keeps a
    classifier to its labels, as the ONNX server's label scoring does) and usage/ollama.sh."""
    best = preferred(files)
    if best is None or best.path is None:
        return
    usage = bundle / "usage"
    usage.mkdir(parents=True, exist_ok=True)
    grammar = ""
    if spec.type == "classification" and spec.labels:
        grammar = "root ::= " + " | ".join(json.dumps(label) for label in spec.labels)
    prompt = template.replace(_SYSTEM, system)
    (usage / "run_llama_cpp.py").write_text(f'''"""llama.cpp through llama-cpp-python (pip install llama-cpp-python): the student's GGUF,
the prompt it was trained on, greedy decoding.
    python usage/run_llama_cpp.py "some input" ...      (or one input per line on stdin)
    GGUF=model-q8_0.gguf python usage/run_llama_cpp.py ...   (another file from gguf/)"""
import sys
from os import environ
from pathlib import Path

from llama_cpp import Llama, LlamaGrammar

MODEL = Path(__file__).resolve().parents[1] / "gguf" / environ.get("GGUF", {best.path.name!r})
PROMPT = {prompt!r}
USER = {_USER!r}
STOP = {stops!r}
GRAMMAR = {grammar!r}  # classification: only a label can be the answer
MAX_TOKENS = {max_tokens if not grammar else 32}

llm = Llama(model_path=str(MODEL), n_ctx=4096, verbose=False)
grammar = LlamaGrammar.from_string(GRAMMAR, verbose=False) if GRAMMAR else None


def answer(text: str) -> str:
    reply = llm.create_completion(PROMPT.replace(USER, text), max_tokens=MAX_TOKENS, temperature=0.0, top_k=1,
                                  stop=STOP, grammar=grammar)
    return reply["choices"][0]["text"].strip()


if __name__ == "__main__":
    for line in sys.argv[1:] or [line.rstrip("\\n") for line in sys.stdin]:
        print(answer(line))
''', encoding="utf-8")
    (usage / "ollama.sh").write_text("\n".join([
        "#!/bin/sh",
        "# Ollama: the Modelfile in gguf/ points at the student's GGUF and carries its prompt and stop tokens.",
        "set -e",
        'cd "$(dirname "$0")/../gguf"',
        f"ollama create {model_name} -f Modelfile",
        f"ollama run {model_name} {_sh(example_input)}",
        "",
    ]), encoding="utf-8")


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def add_to_bundle(checkpoint: Path, bundle: Path, spec: TaskSpec, kinds: list[str] | tuple[str, ...],
                  model_name: str, example_input: str, tools: GgufTools | None = None) -> list[GgufFile]:
    """bundle/gguf/ (the files and the Modelfile) and the usage scripts for them."""
    if not kinds:
        return []
    directory = bundle / "gguf"
    files = export_gguf(checkpoint, directory, kinds, tools)
    best = preferred(files)
    if best is not None and best.path is not None:
        template, system, stops = prompt_template(checkpoint, spec)
        write_modelfile(directory / "Modelfile", best.path.name, template, system, stops)
        write_usage(bundle, spec, files, template, system, stops, model_name, example_input)
    elif directory.exists() and not any(directory.iterdir()):
        shutil.rmtree(directory)
    return files
