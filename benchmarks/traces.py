"""Curated, relabelled traces against training on the raw traces, on one real task.

distil labs reports +12 to +26 points for a student trained on traces its platform curated and
relabelled over one trained on the raw traces. This measures that comparison for Distillery on
examples/news-topic-traces (200 logged, unlabelled BBC tagging requests; news-topic's 250
human-labelled test rows), with the real services as local processes:

1. **Old answers.** The old model answers every trace as the production tagger that logged it
   would have: the trace's own messages (its system prompt and the article) through the
   generator's Complete RPC, greedy, constrained to the task's labels. The old model is the
   bundled teacher itself (gemma3-270m), so the pipeline gains nothing here from a teacher stronger
   than the old model: what is measured is curation, the teacher committee, the synthetic rows and
   the training recipe. The answered traces are written as logged request/response pairs.
2. **raw**: every trace with its old answer is a training row, as it is (no relabelling, no
   curation; only duplicate inputs are kept once and the test set's own rows left out, since a task
   folder refuses both as seeds). The student trained on exactly those rows is the job's seed-only student — the
   fair baseline's recipe: at least as many optimizer steps as a distilled student, stopped when
   the training loss stops falling. (The job runs as a task whose seeds are those rows, with
   ``generation.target_count`` 1; the seed-only student never sees the one synthetic row.)
3. **ours**: the task folder with the answered traces through the whole pipeline (traces stage,
   generation, validation, training). Its seed-only student — curated, relabelled traces without
   synthetic rows — is reported too, as an ablation.

With ``--with-seeds`` the same two arms run again for a user who also has a few labelled examples:
news-topic's 20 gold seeds beside the traces (ours: seeds.jsonl in the folder, so the teacher
relabels few-shot; raw: the gold seeds added to the raw rows).

Both arms are scored on the same test rows; ours − raw carries a paired bootstrap 95% interval,
pooled over ``--train-seeds`` training seeds (retunes on the same rows). Each arm's job is saved
as soon as it ends, and a rerun re-attaches to finished jobs (same request ids), so a stopped run
resumes. Writes benchmarks/results/traces.json and prints the README's lines.

    .venvs/core/bin/python benchmarks/traces.py [--train-seeds 1] [--with-seeds]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import RESULTS, code_version, load_average, machine, write_result  # noqa: E402
from benchmarks.quality import BENCH_PORTS, read_predictions, repeat_training, run_task  # noqa: E402

RESULTS_FILE = RESULTS / "traces.json"
TASK = ROOT / "examples" / "news-topic-traces"
GOLD_SEEDS = ROOT / "examples" / "news-topic" / "seeds.jsonl"  # 20 human-labelled rows, none a trace
OLD_MODEL = "gemma3-270m"
# Complete requests carry at most this many prompts (the generator's MAX_PROMPTS is higher).
ANSWER_BATCH = 32
# Both arms score every test row and compare only the two students (the teacher and the base
# student are not what this measures).
EVALUATION = {"max_examples": 0, "seed_only_baseline": True, "candidates": ["student", "seed-only-student"]}


def old_answers(traces_file: Path, labels: list[str], cache: Path) -> list[dict]:
    """Each trace line with the old model's answer as a logged response; cached in ``cache`` (written
    whole, atomically) so a rerun does not ask again."""
    from distillery.v1 import generator_pb2, generator_pb2_grpc

    from services.pipeline import cli

    if cache.exists():
        return [json.loads(line) for line in cache.read_text().splitlines() if line.strip()]
    rows = [json.loads(line) for line in traces_file.read_text().splitlines() if line.strip()]
    stub = generator_pb2_grpc.GeneratorServiceStub(cli._channel("generator"))
    answered = []
    for start in range(0, len(rows), ANSWER_BATCH):
        batch = rows[start:start + ANSWER_BATCH]
        prompts = [generator_pb2.Prompt(chat=generator_pb2.ChatList(messages=[
            generator_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in row["request"]["messages"]]))
            for row in batch]
        response = stub.Complete(generator_pb2.CompleteRequest(
            prompts=prompts, max_tokens=8, temperature=0.0,
            constraint=generator_pb2.OutputConstraint(choice=generator_pb2.ChoiceList(choices=labels))), timeout=1800)
        for row, completion in zip(batch, response.completions):
            answered.append({**row, "response": {"model": response.model, "choices": [
                {"message": {"role": "assistant", "content": completion.text.strip()}}]}})
        print(f"   old answers: {len(answered)}/{len(rows)} ({response.model})", flush=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in answered))
    os.replace(tmp, cache)
    return answered


def write_arms(work: Path, answered: list[dict]) -> tuple[Path, Path, dict]:
    """The two task folders: ``ours`` (the answered traces beside the task's test set) and ``raw``
    (every answered trace as a training row). Returns them and what the old answers were."""
    from services.common.taskspec import load_task, normalize_text
    from services.common.traces import read_traces

    ours, raw = work / "news-topic-traces-answered", work / "news-topic-raw-traces"
    for folder in (ours, raw):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(TASK / "test.jsonl", folder / "test.jsonl")
    task_yaml = (TASK / "task.yaml").read_text()
    (ours / "task.yaml").write_text(task_yaml.replace("name: news-topic-traces", "name: news-topic-traces-answered"))
    (ours / "traces.jsonl").write_text("".join(json.dumps(row) + "\n" for row in answered))
    spec = load_task(ours).spec
    traces = read_traces(spec, ours / "traces.jsonl")
    usable = [t for t in traces if t.answer is not None]
    # A task folder refuses duplicate seeds and seeds that are test rows, so the raw arm keeps each
    # input once (the first answer) and leaves out the test set's own rows (training on them would
    # inflate the baseline); near copies, off-topic traces and wrong answers stay.
    test_keys = {normalize_text(ex.context + " " + ex.input) for ex in load_task(ours).test}
    distinct, seen, leaks = [], set(), 0
    for trace in usable:
        key = normalize_text(" " + trace.input)
        if key in test_keys:
            leaks += 1
        elif key not in seen:
            seen.add(key)
            distinct.append(trace)
    (raw / "task.yaml").write_text(task_yaml.replace("name: news-topic-traces", "name: news-topic-raw-traces"))
    (raw / "seeds.jsonl").write_text("".join(json.dumps({"input": t.input, "output": t.answer}) + "\n"
                                             for t in distinct))
    gold = {t.line: row.get("source", "").split("/")[1] for t, row in zip(traces, answered) if "/" in row.get("source", "")}
    correct = sum(1 for t in usable if gold.get(t.line) == t.answer)
    summary = {"traces": len(traces), "with_valid_answer": len(usable), "raw_rows": len(distinct),
               "raw_left_out": {"duplicates": len(usable) - len(distinct) - leaks, "test_rows": leaks},
               "distinct_inputs": len({t.input for t in traces}),
               "old_answer_accuracy": round(correct / len(usable), 4) if usable else None,
               "old_answer_labels": {label: sum(t.answer == label for t in usable) for label in spec.labels}}
    return ours, raw, summary


def write_seeded_arms(work: Path, ours: Path, raw: Path) -> tuple[Path, Path]:
    """The same two arms for a user who also has a few labelled examples (traces *beside* seeds):
    news-topic's 20 gold seeds join the ours folder, and the raw arm's rows (the old answers, as
    they are, plus the gold seeds)."""
    from services.common.taskspec import normalize_text

    gold = [json.loads(line) for line in GOLD_SEEDS.read_text().splitlines() if line.strip()]
    seeded_ours, seeded_raw = work / "news-topic-traces-seeds", work / "news-topic-raw-traces-seeds"
    shutil.copytree(ours, seeded_ours, dirs_exist_ok=True)
    shutil.copytree(raw, seeded_raw, dirs_exist_ok=True)
    for folder, name in ((seeded_ours, "news-topic-traces-seeds"), (seeded_raw, "news-topic-raw-traces-seeds")):
        task_yaml = (folder / "task.yaml").read_text()
        (folder / "task.yaml").write_text(re.sub(r"(?m)^name: .*$", f"name: {name}", task_yaml))
    shutil.copy(GOLD_SEEDS, seeded_ours / "seeds.jsonl")
    gold_keys = {normalize_text(" " + row["input"]) for row in gold}
    raw_rows = [json.loads(line) for line in (raw / "seeds.jsonl").read_text().splitlines() if line.strip()]
    rows = gold + [r for r in raw_rows if normalize_text(" " + r["input"]) not in gold_keys]
    (seeded_raw / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return seeded_ours, seeded_raw


def compare_arms(ours: dict, raw: dict, ours_candidate: str = "student") -> dict | None:
    """``ours_candidate`` of the ours job − the raw job's seed-only student, pooled over the
    training seeds both arms finished (same seed paired, same test rows)."""
    from services.evaluator import bootstrap

    metric = ours["primary_metric"]
    raw_runs = {r["training_seed"]: r for r in raw.get("runs", []) if r.get("predictions")}
    pairs = []
    for run in ours.get("runs", []):
        other = raw_runs.get(run["training_seed"])
        if not run.get("predictions") or other is None:
            continue
        mine = sorted((r for r in read_predictions(run["predictions"]) if r.get("candidate") == ours_candidate),
                      key=lambda r: r["index"])
        theirs = sorted((r for r in read_predictions(other["predictions"])
                         if r.get("candidate") == "seed-only-student"), key=lambda r: r["index"])
        a, b = bootstrap.statistic_from_rows(metric, mine), bootstrap.statistic_from_rows(metric, theirs)
        if a is None or b is None or a.n != b.n:
            return None
        pairs.append((a, b))
    if not pairs:
        return None
    delta, low, high = bootstrap.pooled_paired_bootstrap(pairs)
    values = [(a.value(), b.value()) for a, b in pairs]
    return {"a": f"ours:{ours_candidate}", "b": "raw:seed-only-student", "metric": metric, "runs": len(pairs),
            "n": pairs[0][0].n, "ours": [round(v, 4) for v, _ in values], "raw": [round(v, 4) for _, v in values],
            "delta": round(delta, 4), "low": round(low, 4), "high": round(high, 4),
            "verdict": bootstrap.verdict(low, high)}


def summary_lines(result: dict) -> list[str]:
    old = result.get("old_answers")
    if not old:
        return []
    lines = [f"old model ({OLD_MODEL}, the trace's own prompt, constrained to the labels): "
             f"{old['with_valid_answer']}/{old['traces']} traces answered, "
             f"{old['old_answer_accuracy']:.3f} of them right by the articles' BBC categories"]
    for suffix, setting in (("", "traces only"), ("_seeds", "traces beside 20 gold seeds")):
        head, ablation = result.get("comparison" + suffix), result.get("ablation" + suffix)
        if head:
            lines.append(f"{setting}: ours (curated, relabelled + synthetic) {_mean(head['ours']):.3f} vs raw "
                         f"{_mean(head['raw']):.3f} {head['metric']} over {head['runs']} training seed(s), "
                         f"n={head['n']}: {head['delta']:+.3f} [{head['low']:+.3f}, {head['high']:+.3f}] "
                         f"({head['verdict']})")
        if ablation:
            lines.append(f"{setting}: ours without synthetic rows {_mean(ablation['ours']):.3f}: "
                         f"{ablation['delta']:+.3f} [{ablation['low']:+.3f}, {ablation['high']:+.3f}] vs raw "
                         f"({ablation['verdict']})")
    return lines


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-seeds", type=int, default=1, metavar="N",
                        help="train both arms' students with training.seed = 0..N-1 (retunes on the same rows)")
    parser.add_argument("--with-seeds", action="store_true",
                        help="also both arms with news-topic's 20 gold seeds beside the traces")
    parser.add_argument("--keep-running", action="store_true")
    args = parser.parse_args()
    home = ROOT / ".cache" / "bench-traces"
    work = home / "tasks"
    work.mkdir(parents=True, exist_ok=True)
    env = {f"DISTILLERY_{k.upper()}_PORT": str(v) for k, v in BENCH_PORTS.items()}
    env.update({f"DISTILLERY_{k.upper()}_ADDR": f"127.0.0.1:{v}" for k, v in BENCH_PORTS.items()})
    env.update({"DISTILLERY_HOME": str(home), "DISTILLERY_HTTP_PORT": "8100", "DISTILLERY_TEACHER": OLD_MODEL})
    os.environ.update(env)
    from services.common.taskspec import load_task
    from services.pipeline.processes import LocalCluster

    stored = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}
    result: dict = stored.get("result") or {}
    cluster = LocalCluster(home)
    cluster.up(timeout=900)
    try:
        load_before = load_average()
        labels = load_task(TASK).spec.labels
        answered = old_answers(TASK / "traces.jsonl", labels, home / "old-answers.jsonl")
        ours_dir, raw_dir, old = write_arms(work, answered)
        result.update({"task": "news-topic-traces", "old_model": OLD_MODEL, "old_answers": old,
                       "load_average": {"start": load_before}})

        def save() -> None:
            for suffix in ("", "_seeds"):
                ours, raw = result.get("ours" + suffix), result.get("raw" + suffix)
                both = ours is not None and raw is not None
                result["comparison" + suffix] = compare_arms(ours, raw) if both else None
                result["ablation" + suffix] = compare_arms(ours, raw, "seed-only-student") if both else None
            result["load_average"]["end"] = load_average()
            value = result["comparison"]["delta"] if result.get("comparison") else None
            write_result("traces", {
                "name": "traces", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": machine(), "code": code_version(),
                "baseline": {"what": "student trained on the raw traces with the old model's answers "
                                     "(the fair seed-only recipe)",
                             "value": _mean(result["comparison"]["raw"]) if value is not None else None},
                "value": value, "unit": "accuracy points (ours − raw), on news-topic's human-labelled test set",
                "ratio": None, "result": result, "summary": summary_lines(result)})

        arms = [("raw", raw_dir, {"generation": {"target_count": 1}}), ("ours", ours_dir, {})]
        if args.with_seeds:
            seeded_ours, seeded_raw = write_seeded_arms(work, ours_dir, raw_dir)
            arms += [("raw_seeds", seeded_raw, {"generation": {"target_count": 1}}), ("ours_seeds", seeded_ours, {})]
        for arm, folder, settings in arms:
            print(f"== {arm} ==", flush=True)
            overrides = {**settings, "evaluation": dict(EVALUATION), "training": {"seed": 0},
                         "serving": {"deploy": False}}
            if not (result.get(arm) and result[arm].get("rows")):
                result[arm] = run_task(folder, overrides, {})
                result[arm]["overrides"] = overrides
                save()
            if args.train_seeds > 1 and result[arm].get("rows"):
                repeat_training(result[arm], args.train_seeds, save)
            save()
    finally:
        if not args.keep_running:
            cluster.down()
    print("\n".join(summary_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
