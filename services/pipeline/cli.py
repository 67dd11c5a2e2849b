"""`distillery`: the command line for people. Every failure is one actionable line, never a
traceback (run with DISTILLERY_DEBUG=1 to see one)."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from distillery.v1 import pipeline_pb2, pipeline_pb2_grpc, serving_pb2, serving_pb2_grpc

from services.common import envs
from services.common.artifacts import Artifact, ArtifactStore
from services.common.client import OperationsClient, open_channel, operation_metadata
from services.common.config import ClientSecurity, default_home
from services.common.convert import artifact_to_proto, struct_from, struct_to_dict, task_to_proto
from services.common.errors import DistilleryError
from services.common.jsonl import jsonl_bytes
from services.common.taskspec import TASK_TYPES, TaskBundle, load_task
from services.common.traces import TRACES_FILE
from services.pipeline.local_security import client_env
from services.pipeline.processes import REPO, LocalCluster
from services.pipeline.stages import STAGES

EXAMPLE_FOR_TYPE = {"classification": "news-topic", "extraction": "extraction-contacts",
                    "qa-open-book": "qa-open-book", "qa-closed-book": "qa-open-book",
                    "tool-calling": "tool-calling", "multi-turn-tool-calling": "tool-calling"}


class CliError(Exception):
    """One line for the user, then exit 1."""


def _home() -> Path:
    return default_home()


def _address(service: str) -> str:
    return envs.SERVICE_ADDR[service].get()


def _security() -> ClientSecurity:
    """Token and TLS from the environment, else from ``distillery up --secure`` on this home."""
    return ClientSecurity.from_env(client_env(_home(), envs.snapshot()))


def _channel(service: str) -> grpc.Channel:
    return open_channel(_address(service), security=_security())


def _store() -> ArtifactStore:
    home = _home()
    return ArtifactStore(envs.STORE_URL.get() or (home / "store").as_uri(),
                         cache_dir=home / "cache" / "artifacts")


def _rpc(call: Callable[[], Any], service: str) -> Any:
    try:
        return call()
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            raise CliError(f"the {service} service is not reachable at {_address(service)}: start the platform "
                           "with `distillery up`") from None
        raise CliError(f"{service}: {exc.details()}") from None


def _parse_overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise CliError(f"--set {pair!r}: expected SECTION.KEY=VALUE, e.g. generation.target_count=300")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        # validation.near_duplicate.threshold=0.6 → {"validation": {"near_duplicate": {"threshold": 0.6}}}
        target = overrides.setdefault(section, {})
        *parents, leaf = name.split(".")
        for parent in parents:
            if not isinstance(target.setdefault(parent, {}), dict):
                raise CliError(f"--set {pair!r}: {section}.{parent} is set to a value and also used as a section")
            target = target[parent]
        target[leaf] = value
    return overrides


def upload_task(bundle: TaskBundle, store: ArtifactStore) -> dict[str, Artifact]:
    """Put the task's data into the store under a content-addressed prefix."""
    files: dict[str, bytes] = {}
    if bundle.seeds or not bundle.traces:
        files["seeds"] = jsonl_bytes([ex.to_dict() for ex in bundle.seeds])
    if bundle.test or not bundle.traces:
        files["test"] = jsonl_bytes([ex.to_dict() for ex in bundle.test])
    if bundle.traces:  # as the user wrote it: the pipeline's traces stage reads the file itself
        files["traces"] = (bundle.root / TRACES_FILE).read_bytes()
    if bundle.context:
        files["context"] = jsonl_bytes([{"text": text} for text in bundle.context])
    digest = hashlib.sha256(b"".join(files.values())).hexdigest()[:16]
    return {name: store.put_bytes(f"inputs/{bundle.spec.name}-{digest}/{name}.jsonl", data)
            for name, data in files.items()}


def task_request_id(bundle: TaskBundle, artifacts: dict[str, Artifact], overrides: dict[str, Any]) -> str:
    """Same folder, same settings → same job: rerunning `distillery run` re-attaches to it."""
    key = json.dumps({"spec": bundle.spec.to_dict(), "inputs": {k: v.sha256 for k, v in artifacts.items()},
                      "overrides": overrides}, sort_keys=True, default=str)
    return "run-" + hashlib.sha256(key.encode()).hexdigest()[:20]


# ----- commands -----------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> None:
    target = Path(args.dir)
    if target.exists() and any(target.iterdir()):
        raise CliError(f"{target} exists and is not empty; choose a new folder")
    example = REPO / "examples" / EXAMPLE_FOR_TYPE[args.type]
    if not example.is_dir():
        raise CliError(f"the template {example} is missing from this installation")
    shutil.copytree(example, target, dirs_exist_ok=True)
    task_yaml = target / "task.yaml"
    text = task_yaml.read_text()
    if args.type != load_task(target).spec.type:
        text = text.replace(f"type: {load_task(target).spec.type}", f"type: {args.type}")
    task_yaml.write_text(text.replace(f"name: {example.name}", f"name: {target.name}"))
    print(f"created {target}: edit task.yaml, seeds.jsonl (10-50 examples) and test.jsonl, then "
          f"`distillery run {target}`")


def cmd_up(args: argparse.Namespace) -> None:
    cluster = LocalCluster(_home(), secure=args.secure)
    cluster.up(timeout=args.timeout)
    print(f"all services are up; logs in {_home() / 'logs'}")
    if cluster.security.tls:
        print(f"mutual TLS and a bearer token are on; other clients use {_home() / 'tls'} "
              "(ca.pem, client.pem, client.key; the token is in client.env)")


def cmd_down(args: argparse.Namespace) -> None:
    LocalCluster(_home()).down()


def cmd_status(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("service", "address", "pid", "health", "log")
    for proc in LocalCluster(_home()).status():
        table.add_row(proc.name, proc.address, str(proc.pid or "-"), proc.status, str(proc.log))
    Console().print(table)


def _submit(bundle: TaskBundle, overrides: dict[str, Any]) -> str:
    artifacts = upload_task(bundle, _store())
    request = pipeline_pb2.StartDistillationRequest(
        task=task_to_proto(bundle.spec), overrides=struct_from(overrides),
        request_id=task_request_id(bundle, artifacts, overrides))
    for name in ("seeds", "test", "context", "traces"):
        if name in artifacts:
            getattr(request, name).CopyFrom(artifact_to_proto(artifacts[name]))
    stub = pipeline_pb2_grpc.PipelineServiceStub(_channel("pipeline"))
    operation = _rpc(lambda: stub.StartDistillation(request, timeout=30), "pipeline")
    return operation.name


def _watch(ops: OperationsClient, name: str) -> Iterator[Any]:
    """The operation's metadata at every change until it is done; a pipeline that restarts
    (UNAVAILABLE) resumes the job, so watching goes on."""
    while True:
        try:
            for operation in ops.watch(name, interval=1.0):
                yield operation_metadata(operation)
                if operation.done:
                    return
            return
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise CliError(f"pipeline: {exc.details()}") from None
            time.sleep(2)


def follow_lines(name: str, interval: float = 30.0) -> pipeline_pb2.Job:
    """Progress as plain lines (stdout is not a terminal): one per stage transition and one every
    ``interval`` seconds; returns the Job."""
    from services.pipeline.progress_log import LineProgress, plain_stage_state

    channel = _channel("pipeline")
    ops = OperationsClient(channel)
    stub = pipeline_pb2_grpc.PipelineServiceStub(channel)
    lines = LineProgress(STAGES, sys.stdout, interval=interval)
    for meta in _watch(ops, name):
        lines.update(meta.message, dict(meta.counters))
    job = _rpc(lambda: stub.GetJob(pipeline_pb2.GetJobRequest(name=name), timeout=30), "pipeline")
    lines.finish(job.state, {s.name: plain_stage_state(pipeline_pb2.StageState.Name(s.state)) for s in job.stages})
    return job


def follow(name: str, quiet: bool = False) -> pipeline_pb2.Job:
    """Live progress until the job ends; returns the Job. One bar per stage on a terminal, plain
    lines where stdout is not one (CI, nohup, a log file)."""
    if not quiet and not sys.stdout.isatty():
        return follow_lines(name)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    channel = _channel("pipeline")
    ops = OperationsClient(channel)
    stub = pipeline_pb2_grpc.PipelineServiceStub(channel)
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), disable=quiet) as progress:
        bars = {stage: progress.add_task(stage, total=None, info="", start=False) for stage in STAGES}
        for meta in _watch(ops, name):
            index = int(meta.counters.get("stage_index", -1))
            if 0 <= index < len(STAGES):
                bar = bars[STAGES[index]]
                progress.start_task(bar)
                total = meta.counters.get("stage_total") or None
                progress.update(bar, total=total, completed=meta.counters.get("stage_done", 0),
                                info=meta.message[:60])
                for earlier in STAGES[:index]:
                    progress.update(bars[earlier], total=1, completed=1)
        job = _rpc(lambda: stub.GetJob(pipeline_pb2.GetJobRequest(name=name), timeout=30), "pipeline")
        for stage in job.stages:
            if stage.state in (pipeline_pb2.STAGE_STATE_SUCCEEDED, pipeline_pb2.STAGE_STATE_SKIPPED):
                progress.start_task(bars[stage.name])
                progress.update(bars[stage.name], total=1, completed=1,
                                info="skipped" if stage.state == pipeline_pb2.STAGE_STATE_SKIPPED else "done")
    return job


def cmd_run(args: argparse.Namespace) -> None:
    try:
        bundle = load_task(Path(args.task_dir))
    except DistilleryError as exc:
        raise CliError(str(exc)) from None
    name = _submit(bundle, _parse_overrides(args.set or []))
    traces = f", {len(bundle.traces)} traces" if bundle.traces else ""
    print(f"job {name.rsplit('/', 1)[-1]} ({bundle.spec.name}: {bundle.spec.type}, {len(bundle.seeds)} seeds, "
          f"{len(bundle.test)} test examples{traces})")
    if args.detach:
        return
    job = follow(name)
    print_job(job)
    if job.state in ("FAILED", "CANCELLED"):
        raise CliError(job.message or f"job {job.state.lower()}")


def traces_line(job: pipeline_pb2.Job) -> str:
    """What the traces became, in one line ("" for a job without traces)."""
    stage = next((s for s in job.stages if s.name == "traces"), None)
    if stage is None or stage.state != pipeline_pb2.STAGE_STATE_SUCCEEDED:
        return ""
    summary = struct_to_dict(stage.summary)
    dropped = ", ".join(f"{int(n)} {reason}" for reason, n in summary.get("dropped_by_reason", {}).items() if n)
    line = (f"traces: {int(summary.get('read', 0))} read -> {int(summary.get('seeds', 0))} seeds, "
            f"{int(summary.get('test', 0))} test, {int(summary.get('unused', 0))} unused; "
            f"dropped {int(summary.get('dropped', 0))}" + (f" ({dropped})" if dropped else ""))
    if summary.get("with_old_answer"):
        line += (f"; the teacher agreed with the old answer on {int(summary.get('old_answer_agrees', 0))} of "
                 f"{int(summary['with_old_answer'])}")
    return line


def print_job(job: pipeline_pb2.Job) -> None:
    print(f"job {job.name.rsplit('/', 1)[-1]}: {job.state}" + (f" - {job.message}" if job.message else ""))
    if traces_line(job):
        print(traces_line(job))
    for warning in job.warnings:
        print(f"warning: {warning}")
    if job.served_model:
        name, _, version = job.served_model.partition(":")
        print(f"served as {job.served_model}: try `distillery predict --model {name} \"...\"`")
    if job.report.uri:
        print(f"report: `distillery report {job.name.rsplit('/', 1)[-1]}` ({job.report.uri})")


def _job(ref: str) -> pipeline_pb2.Job:
    stub = pipeline_pb2_grpc.PipelineServiceStub(_channel("pipeline"))
    return _rpc(lambda: stub.GetJob(pipeline_pb2.GetJobRequest(name=ref), timeout=30), "pipeline")


def cmd_jobs(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    stub = pipeline_pb2_grpc.PipelineServiceStub(_channel("pipeline"))
    jobs = _rpc(lambda: stub.ListJobs(pipeline_pb2.ListJobsRequest(page_size=args.limit), timeout=30), "pipeline")
    table = Table("job", "task", "state", "stage", "student/teacher", "message")
    for job in jobs.jobs:
        current = next((s.name for s in job.stages if s.state == pipeline_pb2.STAGE_STATE_RUNNING), "")
        table.add_row(job.name.rsplit("/", 1)[-1], job.task_name, job.state, current,
                      f"{job.student_teacher_ratio:.2f}" if job.student_teacher_ratio else "-", job.message[:60])
    Console().print(table)


def cmd_report(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.markdown import Markdown

    job = _job(args.job)
    if not job.report.uri:
        raise CliError(f"job {args.job} has no report yet (state {job.state})")
    store = _store()
    text = store.read_bytes(Artifact(job.report.uri, job.report.sha256, job.report.size)).decode()
    Console().print(Markdown(text))
    if traces_line(job):
        print(traces_line(job))
    for warning in job.warnings:
        print(f"warning: {warning}")
    if job.deployed_student:
        print(f"deployed: {job.deployed_student}")
    print(f"\nreport files: {job.report.uri.rsplit('/', 1)[0]}/ (report.md, report.json, predictions, plots)")


def review_url(job_id: str, security: ClientSecurity) -> str:
    """The review page of a job: DISTILLERY_REVIEW_URL, else the pipeline's host on
    DISTILLERY_REVIEW_PORT; HTTPS when the platform uses TLS. The token goes in the fragment,
    which the browser keeps to itself (the page sends it as a bearer header)."""
    base = envs.REVIEW_URL.get().rstrip("/")
    if not base:
        host = _address("pipeline").rsplit(":", 1)[0]
        base = f"{'https' if security.tls else 'http'}://{host}:{envs.REVIEW_PORT.get()}"
    return f"{base}/review/{job_id}" + (f"#token={security.token}" if security.token else "")


def cmd_review(args: argparse.Namespace) -> None:
    """Open a job's review page: its rows, the teacher's labels and the validator's verdicts;
    accept or reject rows by hand, approve the test set; `distillery retune` then uses them."""
    import webbrowser

    job = _job(args.job)
    url = review_url(job.name.rsplit("/", 1)[-1], _security())
    print(f"review page of job {job.name.rsplit('/', 1)[-1]} ({job.task_name}, {job.state}):\n  {url}")
    print("decisions are saved with the job; `distillery retune JOB` trains on the data as reviewed")
    if not args.no_open:
        webbrowser.open(url)


def cmd_predict(args: argparse.Namespace) -> None:
    stub = serving_pb2_grpc.ServingServiceStub(_channel("serving"))
    request = serving_pb2.PredictRequest(model_name=args.model, model_version=args.version or "", inputs=args.text,
                                         max_tokens=args.max_tokens)
    reply = _rpc(lambda: stub.Predict(request, timeout=120), "serving")
    for text, prediction in zip(args.text, reply.predictions):
        extra = ""
        if prediction.label_probabilities:
            best = max(prediction.label_probabilities.values())
            extra = f"  (p={best:.2f})"
        print(f"{text[:60]!r} -> {prediction.output}{extra}")


def cmd_retune(args: argparse.Namespace) -> None:
    from distillery.v1 import common_pb2

    stub = pipeline_pb2_grpc.PipelineServiceStub(_channel("pipeline"))
    overrides = _parse_overrides(args.set or [])
    request = pipeline_pb2.StartRetuneRequest(job=args.job, overrides=struct_from(overrides))
    if args.student:
        request.student.CopyFrom(common_pb2.ModelRef(uri=args.student))
    operation = _rpc(lambda: stub.StartRetune(request, timeout=30), "pipeline")
    reused = "generated rows, validated again with the new settings" if overrides.get("validation") \
        else "validated data"
    print(f"retune job {operation.name.rsplit('/', 1)[-1]} (reusing the {reused} of {args.job})")
    if not args.detach:
        print_job(follow(operation.name))


def cmd_retry(args: argparse.Namespace) -> None:
    """Resume a failed or cancelled job: finished stages are kept, the rest run again."""
    stub = pipeline_pb2_grpc.PipelineServiceStub(_channel("pipeline"))
    job = _job(args.job)
    operation = _rpc(lambda: stub.RetryJob(pipeline_pb2.RetryJobRequest(name=job.name), timeout=30), "pipeline")
    print(f"job {operation.name.rsplit('/', 1)[-1]} resumed")
    if not args.detach:
        print_job(follow(operation.name))


def cmd_cancel(args: argparse.Namespace) -> None:
    job = _job(args.job)
    _rpc(lambda: OperationsClient(_channel("pipeline")).cancel(job.name), "pipeline")
    print(f"cancel requested for {args.job}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillery", description="Distil a small student model from a teacher.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="scaffold a task folder")
    p.add_argument("dir")
    p.add_argument("--type", choices=TASK_TYPES, default="classification")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("up", help="start every service as a local process")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--secure", action="store_true",
                   help="mutual TLS and a bearer token on every service (certificates made under <home>/tls)")
    p.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the local services").set_defaults(func=cmd_down)
    sub.add_parser("status", help="health of every service").set_defaults(func=cmd_status)
    p = sub.add_parser("run", help="distil a task folder (rerun to resume)")
    p.add_argument("task_dir")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a task.yaml setting")
    p.add_argument("--detach", action="store_true", help="submit and return")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("jobs", help="list jobs")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_jobs)
    p = sub.add_parser("report", help="show a job's evaluation report")
    p.add_argument("job")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("review", help="open a job's data in the browser: accept or reject rows, approve the test set")
    p.add_argument("job")
    p.add_argument("--no-open", action="store_true", help="print the page's address only")
    p.set_defaults(func=cmd_review)
    p = sub.add_parser("predict", help="ask the served student")
    p.add_argument("text", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--version", default="")
    p.add_argument("--max-tokens", type=int, default=64)
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("retune", help="train again on a job's data (validated again if --set validation.* is given)")
    p.add_argument("job")
    p.add_argument("--student")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    p.add_argument("--detach", action="store_true")
    p.set_defaults(func=cmd_retune)
    p = sub.add_parser("retry", help="resume a failed or cancelled job (finished stages are kept)")
    p.add_argument("job")
    p.add_argument("--detach", action="store_true")
    p.set_defaults(func=cmd_retry)
    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("job")
    p.set_defaults(func=cmd_cancel)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        return 0
    except (CliError, DistilleryError) as exc:
        if envs.DEBUG.get():
            raise
        print(f"distillery: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("distillery: interrupted (the job keeps running; `distillery jobs` shows it)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
