"""The README's `examples/` folders of the two task types added last, run as a user runs them: the
platform started with `distillery up` (six local processes), then `distillery run <folder>` with
its stdout a pipe, as under CI, nohup or a log file. Each job must run every stage to its end and
serve its student: SUCCEEDED, or NEEDS_ATTENTION when the quality gate says the student is not yet
good enough (what the bundled 270M teacher gets on these tasks: closed-book facts it does not
know), never FAILED; the CLI must have printed plain progress lines (one per stage transition, the
job's end) and not a terminal's progress bars; the report must score every candidate with the task
type's own metric.

Small overrides (16 generated rows, 4 optimizer steps, 12 test examples, no int8 variant) keep
qa-closed-book to ~5 minutes here; multi-turn-tool-calling's ~1,300-token prompts (15 tool
schemas + the conversation) make every stage slow on 2 CPU cores — measured 2026-12-04: generation
3 min, training 7 + 4 min, evaluation 7 min, and the export's parity checks on 32 such inputs over
19 min for fp32 + int8, past the 40-minute limit this test had then; so the int8 variant is left out
here (tests/reliability/test_distillation_under_kill9.py exports it) and the limit is an hour. The
examples' own settings are what `distillery run examples/<name>` uses (README, "Task types")."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from services.evaluator.metrics import PRIMARY_METRIC
from tests.helpers.services import REPO, free_port, vllm_python

pytestmark = pytest.mark.slow

CLI = REPO / ".venvs" / "core" / "bin" / "distillery"
QUICK = ["generation.target_count=16", "generation.batch_size=8", "training.max_steps=4", "training.epochs=1",
         "evaluation.max_examples=12", "evaluation.seed_only_min_steps=4", "serving.gguf=[]",
         "serving.quantizations=[]"]
PLAIN_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] (stage \d+/\d+ \w+: .+|job \w+)$")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):
    if not vllm_python().exists() or not CLI.exists():
        pytest.skip("the environments are not built; run `make setup`")
    home = tmp_path_factory.mktemp("home")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DISTILLERY_")}
    env.update({"DISTILLERY_HOME": str(home), "DISTILLERY_MODEL_CACHE": str(model_cache),
                "DISTILLERY_HTTP_PORT": str(free_port()), "DISTILLERY_REVIEW_PORT": str(free_port()),
                "DISTILLERY_VLLM_KVCACHE_GIB": "1"})
    for service in ("pipeline", "generator", "validator", "trainer", "evaluator", "serving"):
        port = free_port()
        env[f"DISTILLERY_{service.upper()}_PORT"] = str(port)
        env[f"DISTILLERY_{service.upper()}_ADDR"] = f"127.0.0.1:{port}"
    up = subprocess.run([str(CLI), "up", "--timeout", "600"], env=env, capture_output=True, text=True, timeout=700)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env, home
    finally:
        subprocess.run([str(CLI), "down"], env=env, capture_output=True, timeout=120)


def _run(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """The CLI with stdout a pipe (not a terminal)."""
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("example", ["qa-closed-book", "multi-turn-tool-calling"])
def test_example_folder_runs_to_a_served_student_with_plain_progress_lines(
        platform, example: str, tmp_path: Path) -> None:
    env, home = platform
    folder = tmp_path / example
    shutil.copytree(REPO / "examples" / example, folder)
    args = ["run", str(folder)]
    for setting in QUICK:
        args += ["--set", setting]
    run = _run(env, *args, timeout=3600)
    out = run.stdout
    print(out)  # what a user's log file holds (shown with pytest -s)
    assert run.returncode == 0, out + run.stderr
    assert "\x1b[" not in out  # no terminal escape codes: the progress is plain lines

    lines = out.splitlines()
    header = lines[0]
    assert header.startswith("job ") and f"({example}: {example}," in header, header
    progress = [line for line in lines if line.startswith("[")]
    assert progress and all(PLAIN_LINE.match(line) for line in progress), progress
    for stage in ("generate", "validate", "train", "train_seed_only", "evaluate", "export", "deploy"):
        assert any(re.match(rf"^\[..:..:..\] stage \d+/\d+ {stage}: ", line) for line in progress), (stage, progress)
    assert any(re.match(r"^\[..:..:..\] stage \d+/\d+ deploy: done$", line) for line in progress), progress
    ended = re.match(r"^\[..:..:..\] job (SUCCEEDED|NEEDS_ATTENTION)$", progress[-1])
    assert ended, progress[-1]
    job_id = header.split()[1]
    assert f"job {job_id}: {ended.group(1)}" in out
    served = re.search(r"^served as (\S+):", out, re.M)
    assert served, out

    # The report scores every candidate with the task type's own metric.
    report = _run(env, "report", job_id, timeout=120)
    assert report.returncode == 0, report.stderr
    markdown = re.search(r"^report: .*\((file://\S+/report\.md)\)$", out, re.M)
    assert markdown, out
    data = json.loads(Path(urlparse(markdown.group(1)).path).with_name("report.json").read_text())
    assert data["primary_metric"] == PRIMARY_METRIC[example]
    scored = {candidate["name"]: candidate for candidate in data["candidates"]}
    assert {"teacher", "student", "seed-only-student"} <= set(scored), sorted(scored)
    for name, candidate in scored.items():
        assert not candidate.get("error"), (name, candidate.get("error"))
        assert 0.0 <= float(candidate["metrics"][PRIMARY_METRIC[example]]) <= 1.0, name

    if example == "qa-closed-book":  # the served student answers a question through the CLI
        answer = _run(env, "predict", "--model", served.group(1).split(":")[0], "who wrote hamlet", timeout=180)
        assert answer.returncode == 0 and answer.stdout.strip(), answer.stderr
