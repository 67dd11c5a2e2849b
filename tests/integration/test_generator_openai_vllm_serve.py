"""The openai backend against a real OpenAI-compatible server: `vllm serve` with the catalog
teacher on loopback (structured outputs sent the vLLM way, in the request body), and a small
generation job through it."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from services.common.jsonl import read_jsonl
from services.common.taskspec import check_output, load_task
from services.generator.backend import CompletionRequest, Constraint
from services.generator.handler import EXAMPLES, GenerationJob
from services.generator.openai_backend import OpenAIBackend, OpenAIConfig
from services.generator.settings import GenerationSettings
from tests.helpers.services import free_port, vllm_python

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TASKS = Path(__file__).resolve().parents[1] / "data" / "generator_tasks"
TEACHER = os.environ.get("DISTILLERY_TEST_TEACHER", "gemma3-270m")


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory, materialized):
    python = vllm_python()
    if not python.exists():
        pytest.skip(f"no vLLM environment at {python} (set DISTILLERY_VLLM_PYTHON or run `make setup`)")
    model = materialized(TEACHER)
    home = tmp_path_factory.mktemp("vllm-serve")
    port = free_port()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_CACHE_ROOT=str(home / "cache"), HF_HUB_OFFLINE="1",
               VLLM_NO_USAGE_STATS="1")
    log = open(home / "serve.log", "wb")
    # `vllm serve` (the CLI) looks up the version of a distribution named "vllm", which the CPU
    # build (distribution "vllm-cpu") does not have; the api_server module serves the same app.
    process = subprocess.Popen([str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
                                "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "teacher",
                                "--max-model-len", "2048", "--enforce-eager", "--dtype", "float32"],
                               stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 900
    try:
        while True:
            if process.poll() is not None:
                pytest.fail("vllm serve exited:\n" + (home / "serve.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("vllm serve did not become healthy:\n" + (home / "serve.log").read_text()[-3000:])
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
        log.close()


def test_structured_outputs_through_vllm_serve(vllm_server: str) -> None:
    backend = OpenAIBackend(OpenAIConfig.from_ref(f"openai:{vllm_server}#teacher", {"concurrency": 4}))
    try:
        few_shot = ("Input: my card is broken\nLabel: card\n\nInput: send money to bob\nLabel: transfer\n\n"
                    "Input: what is my balance\nLabel: balance\n\nInput: I lost my card\nLabel:")
        outs = backend.complete(CompletionRequest(prompts=[few_shot] * 3,
                                                  constraint=Constraint.choice([" card", " transfer", " balance"]),
                                                  max_tokens=8, choice_logprobs=True, seeds=[1, 2, 3]))
        for out in outs:
            assert out.text in (" card", " transfer", " balance") and out.prompt_tokens > 20
            assert sum(out.choice_probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                  "additionalProperties": False}
        out = backend.complete(CompletionRequest(prompts=["Text: I live in Rome\nOutput:"],
                                                 constraint=Constraint.json_schema(schema), max_tokens=32))[0]
        assert set(json.loads(out.text)) == {"city"}
        chat = backend.complete(CompletionRequest(prompts=[[{"role": "user", "content": "Name a city as JSON."}]],
                                                  constraint=Constraint.json_schema(schema), max_tokens=32))[0]
        assert set(json.loads(chat.text)) == {"city"}
    finally:
        backend.close()


def test_generation_job_through_openai_backend(vllm_server: str, tmp_path: Path) -> None:
    bundle = load_task(TASKS / "weather_tools")
    backend = OpenAIBackend(OpenAIConfig.from_ref(f"openai:{vllm_server}#teacher", {"concurrency": 8}))
    try:
        job = GenerationJob(bundle.spec, bundle.seeds, [], GenerationSettings(target=10, batch_size=8, random_seed=3),
                            backend, tmp_path)
        summary = job.run(lambda **_: None, lambda: None)
    finally:
        backend.close()
    rows = read_jsonl(tmp_path / EXAMPLES)
    assert summary["generated"] == len(rows) == 10
    for row in rows:
        check_output(bundle.spec, row["output"])
