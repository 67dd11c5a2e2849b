"""Distillation quality on real tasks: runs the full pipeline (the real services as local
processes) per task and writes one row per task and candidate — teacher, trained student,
seed-only student, base student zero-shot — with student latency against teacher latency, and
says plainly whether the synthetic data beat the seed-only student.

    .venvs/core/bin/python benchmarks/quality.py [--tasks news-topic extraction-contacts qa-open-book]
        [--set generation.target_count=300 ...]

The same script runs a bigger teacher and student on a GPU machine by configuration alone:
    --set task.teacher=Qwen/Qwen3-235B-A22B --set task.student=qwen3-0.6b
Writes benchmarks/results/quality.json and prints a Markdown table (pasted into the README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine, write_result  # noqa: E402

CANDIDATE_ROLE = {"teacher": "teacher", "student": "trained student", "seed-only-student": "seed-only student",
                  "base-student": "base student (zero-shot)"}
BENCH_PORTS = {"pipeline": 50150, "generator": 50151, "validator": 50152, "trainer": 50153, "evaluator": 50154,
               "serving": 50155}


def run_task(task_dir: Path, overrides: dict, task_overrides: dict, timeout: float) -> dict:
    from google.protobuf import json_format

    from distillery.v1 import pipeline_pb2
    from services.common.artifacts import Artifact
    from services.common.taskspec import load_task
    from services.pipeline import cli

    bundle = load_task(task_dir)
    for key, value in task_overrides.items():
        setattr(bundle.spec, key, value)
    started = time.time()
    name = cli._submit(bundle, overrides)
    job = cli.follow(name, quiet=not sys.stdout.isatty())
    seconds = time.time() - started
    stages = {s.name: s for s in job.stages}
    report_ref = stages["evaluate"].artifacts.get("report_json") if "evaluate" in stages else None
    if job.state in ("FAILED", "CANCELLED") or report_ref is None or not report_ref.uri:
        return {"task": bundle.spec.name, "type": bundle.spec.type, "state": job.state, "message": job.message,
                "seconds": round(seconds, 1), "rows": []}
    report = json.loads(cli._store().read_bytes(Artifact(report_ref.uri, report_ref.sha256, report_ref.size)))
    primary = report["primary_metric"]
    rows = []
    by_name = {c["name"]: c for c in report["candidates"]}
    teacher_latency = by_name.get("teacher", {}).get("latency_p50_ms") or 0.0
    for cand in report["candidates"]:
        rows.append({"candidate": cand["name"], "role": CANDIDATE_ROLE.get(cand["name"], cand["name"]),
                     "metric": primary, "value": cand.get("metrics", {}).get(primary),
                     "latency_p50_ms": cand.get("latency_p50_ms"), "error": cand.get("error"),
                     "speedup_vs_teacher": (teacher_latency / cand["latency_p50_ms"])
                     if teacher_latency and cand.get("latency_p50_ms") else None})
    student = by_name.get("student", {}).get("metrics", {}).get(primary)
    seed_only = by_name.get("seed-only-student", {}).get("metrics", {}).get(primary)
    verdict = None
    if student is not None and seed_only is not None:
        delta = student - seed_only
        verdict = {"synthetic_beat_seed_only": delta > 0, "delta": round(delta, 4),
                   "summary": (f"synthetic data {'beat' if delta > 0 else 'did NOT beat'} the seed-only student "
                               f"by {delta:+.3f} {primary}")}
    summary = json_format.MessageToDict(stages["validate"].summary) if "validate" in stages else {}
    return {"task": bundle.spec.name, "type": bundle.spec.type, "state": job.state, "seconds": round(seconds, 1),
            "primary_metric": primary, "student_teacher_ratio": report.get("student_teacher_ratio"),
            "test_examples": max((c.get("examples", 0) for c in report["candidates"]), default=0),
            "validation": summary, "verdict": verdict, "rows": rows}


def markdown(results: list[dict]) -> str:
    lines = ["| task | metric | teacher | trained student | seed-only student | base student | student vs teacher latency | synthetic beat seed-only? |",
             "|---|---|---|---|---|---|---|---|"]
    for res in results:
        if not res["rows"]:
            lines.append(f"| {res['task']} | — | {res['state']}: {res.get('message', '')[:60]} | | | | | |")
            continue
        value = {r["candidate"]: r["value"] for r in res["rows"]}
        fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        speed = next((r["speedup_vs_teacher"] for r in res["rows"] if r["candidate"] == "student"), None)
        verdict = res["verdict"]["summary"] if res.get("verdict") else "seed-only baseline not run"
        lines.append(f"| {res['task']} | {res['primary_metric']} | {fmt(value.get('teacher'))} | "
                     f"{fmt(value.get('student'))} | {fmt(value.get('seed-only-student'))} | "
                     f"{fmt(value.get('base-student'))} | {'—' if speed is None else f'{speed:.1f}x faster'} | {verdict} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["news-topic", "extraction-contacts", "qa-open-book"])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per task")
    parser.add_argument("--keep-running", action="store_true")
    args = parser.parse_args()
    home = ROOT / ".cache" / "bench-quality"
    env = {f"DISTILLERY_{k.upper()}_PORT": str(v) for k, v in BENCH_PORTS.items()}
    env.update({f"DISTILLERY_{k.upper()}_ADDR": f"127.0.0.1:{v}" for k, v in BENCH_PORTS.items()})
    env.update({"DISTILLERY_HOME": str(home), "DISTILLERY_HTTP_PORT": "8100"})
    os.environ.update(env)
    from services.pipeline import cli
    from services.pipeline.processes import LocalCluster

    overrides = cli._parse_overrides(args.set)
    task_overrides = overrides.pop("task", {})
    overrides.setdefault("evaluation", {})["seed_only_baseline"] = True
    cluster = LocalCluster(home)
    cluster.up(timeout=900)
    results = []
    try:
        for task in args.tasks:
            print(f"== {task} ==", flush=True)
            results.append(run_task(ROOT / "examples" / task, overrides, task_overrides, args.timeout))
    finally:
        if not args.keep_running:
            cluster.down()
    table = markdown(results)
    print(table)
    ratios = [r["student_teacher_ratio"] for r in results if r.get("student_teacher_ratio")]
    write_result("quality", {
        "name": "quality", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "baseline": {"what": "the teacher on the same held-out examples (student/teacher ratio of the primary metric)",
                     "value": 1.0},
        "value": round(sum(ratios) / len(ratios), 4) if ratios else None, "unit": "student/teacher primary metric",
        "ratio": round(sum(ratios) / len(ratios), 4) if ratios else None,
        "overrides": overrides, "tasks": results, "markdown": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
