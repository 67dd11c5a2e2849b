from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from services.common.artifacts import ArtifactStore
from services.common.atomic import write_bytes_atomic
from services.common.errors import InvalidArgument, LeaseLost, NotFound
from services.common.jobs import JobRunner, OperationContext
from services.common.operations import open_operation_store


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test runs against both stores: the embedded SQLite file and a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ops.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.database_url(re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60])


def make_runner(tmp_path: Path, db_url: str) -> JobRunner:
    ops = open_operation_store(db_url)
    return JobRunner("validator", ops, ArtifactStore((tmp_path / "store").as_uri()), tmp_path)


def test_store_survives_reopen_and_dedups_request_ids(tmp_path: Path, db_url: str) -> None:
    ops = open_operation_store(db_url)
    first, created = ops.create("trainer", "training", {"a": 1}, request_id="r1")
    again, created_again = ops.create("trainer", "training", {"a": 2}, request_id="r1")
    assert created and not created_again and again.name == first.name
    reopened = open_operation_store(db_url)
    assert reopened.get(first.name).request == {"a": 1}
    with pytest.raises(NotFound):
        reopened.get("trainer/operations/none")
    with pytest.raises(InvalidArgument, match="unsupported"):
        open_operation_store("mysql://x")


def test_records_of_renamed_job_kinds_are_migrated_on_open(tmp_path: Path, db_url: str) -> None:
    """A store written before the trainer's and evaluator's jobs were renamed ("train" →
    "training", "evaluate" → "evaluation"): reopening it renames the records, so an unfinished job
    still finds its handler and a finished one its result type."""
    ops = open_operation_store(db_url)
    train, _ = ops.create("trainer", "train", {"a": 1})
    evaluate, _ = ops.create("evaluator", "evaluate", {"b": 2})
    other, _ = ops.create("pipeline", "train", {})  # only the trainer's "train" was renamed
    reopened = open_operation_store(db_url)
    assert reopened.get(train.name).kind == "training"
    assert reopened.get(evaluate.name).kind == "evaluation"
    assert reopened.get(other.name).kind == "train"
    assert reopened.get(train.name).request == {"a": 1}


def test_job_runs_reports_progress_and_result(tmp_path: Path, db_url: str) -> None:
    runner = make_runner(tmp_path, db_url)

    def handler(ctx: OperationContext) -> dict:
        for i in range(3):
            ctx.progress(done=i + 1, total=3, unit="rows", force=True)
        return {"read": 3}

    runner.register("validation", handler)
    record = runner.wait(runner.submit("validation", {}).name, timeout=10)
    assert record.state == "SUCCEEDED" and record.result == {"read": 3}
    assert record.metadata["done"] == 3 and record.metadata["total"] == 3


def test_failure_is_typed_and_cancel_stops_the_job(tmp_path: Path, db_url: str) -> None:
    runner = make_runner(tmp_path, db_url)

    def bad(ctx: OperationContext) -> dict:
        raise InvalidArgument("row 3: field x is wrong")

    def slow(ctx: OperationContext) -> dict:
        while True:
            ctx.check_cancelled()
            time.sleep(0.02)

    runner.register("bad", bad)
    runner.register("slow", slow)
    failed = runner.wait(runner.submit("bad", {}).name, timeout=10)
    assert failed.state == "FAILED" and failed.error_code == "INVALID_ARGUMENT"
    assert failed.error_message == "row 3: field x is wrong"
    name = runner.submit("slow", {}).name
    time.sleep(0.2)
    runner.cancel(name)
    assert runner.wait(name, timeout=10).state == "CANCELLED"


def test_unfinished_jobs_resume_after_a_restart(tmp_path: Path, db_url: str) -> None:
    """A runner that stops mid-job leaves the operation RUNNING; a new runner resumes it and the
    handler continues from what it wrote in its work directory."""
    started = threading.Event()

    def handler(ctx: OperationContext) -> dict:
        progress_file = ctx.work_dir / "done.txt"
        done = int(progress_file.read_text()) if progress_file.exists() else 0
        while done < 5:
            ctx.check_cancelled()
            done += 1
            progress_file.write_text(str(done))
            started.set()
            time.sleep(0.1)
        return {"read": done, "resumed": ctx.resumed}

    first = make_runner(tmp_path, db_url)
    first.register("validation", handler)
    name = first.submit("validation", {}).name
    started.wait(5)
    first.shutdown(wait=True)
    assert first.ops.get(name).state == "RUNNING"
    second = make_runner(tmp_path, db_url)
    second.register("validation", handler)
    assert second.resume_unfinished() == [name]
    record = second.wait(name, timeout=10)
    assert record.state == "SUCCEEDED" and record.result == {"read": 5, "resumed": True}
    assert record.metadata["resumes"] == 1


def test_starting_a_failed_operation_again_retries_it_in_place(tmp_path: Path, db_url: str) -> None:
    runner = make_runner(tmp_path, db_url)
    attempts = []

    def flaky(ctx: OperationContext) -> dict:
        attempts.append(ctx.name)
        if len(attempts) == 1:
            raise InvalidArgument("first attempt fails")
        return {"read": 1}

    runner.register("validation", flaky)
    first = runner.wait(runner.submit("validation", {}, request_id="job-1:validate").name, timeout=10)
    assert first.state == "FAILED"
    again = runner.submit("validation", {}, request_id="job-1:validate")
    assert again.name == first.name
    done = runner.wait(again.name, timeout=10)
    assert done.state == "SUCCEEDED" and done.error_code is None and done.metadata["retries"] == 1
    assert attempts == [first.name, first.name]


def test_two_replicas_on_one_database_create_one_operation_per_request_id(tmp_path: Path, db_url: str) -> None:
    """Two stores on one database (two replicas of a service) racing to start the same request:
    the unique (service, request_id) index makes exactly one operation, and both see it."""
    first, second = open_operation_store(db_url), open_operation_store(db_url)
    results: list[tuple] = []
    barrier = threading.Barrier(8)

    def start(store) -> None:
        barrier.wait()
        results.append(store.create("generator", "generation", {"n": 1}, request_id="job-7:generate"))

    threads = [threading.Thread(target=start, args=(first if i % 2 else second,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({record.name for record, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    name = results[0][0].name
    before = first.version()
    second.update(name, state="RUNNING")
    assert first.get(name).state == "RUNNING" and first.version() != before  # the other replica's write shows


def test_an_unreachable_database_is_unavailable_and_hides_the_password() -> None:
    from services.common.errors import Unavailable

    with pytest.raises(Unavailable) as info:
        open_operation_store("postgresql://alice:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(info.value) and "alice:***@127.0.0.1:1/db" in str(info.value)


# ----- leases: several replicas on one database ---------------------------------------------------
def test_a_claim_is_exclusive_until_its_lease_runs_out(tmp_path: Path, db_url: str) -> None:
    ops = open_operation_store(db_url)
    record, _ = ops.create("generator", "generation", {}, "r1")
    assert ops.claim(record.name, "replica-a", 0.5)
    assert not ops.claim(record.name, "replica-b", 0.5)  # a live lease
    assert ops.claim(record.name, "replica-a", 0.5)  # the holder may claim again
    assert [r.name for r in ops.claimable("generator")] == []
    ops.update(record.name, held_by="replica-a", metadata={"done": 1})
    time.sleep(0.7)  # replica-a died: its lease runs out
    assert [r.name for r in ops.claimable("generator")] == [record.name]
    assert ops.claim(record.name, "replica-b", 30)
    with pytest.raises(LeaseLost, match="held by replica-b"):  # the old holder's late write is refused
        ops.update(record.name, held_by="replica-a", state="SUCCEEDED")
    assert not ops.renew(record.name, "replica-a", 30) and ops.renew(record.name, "replica-b", 30)
    ops.update(record.name, held_by="replica-b", state="SUCCEEDED")
    ops.release(record.name, "replica-b")
    assert not ops.claim(record.name, "replica-c", 30)  # finished: nothing to claim
    assert ops.get(record.name).owner is None


def test_two_replicas_claiming_at_once_one_wins(tmp_path: Path, db_url: str) -> None:
    stores = [open_operation_store(db_url) for _ in range(2)]
    record, _ = stores[0].create("trainer", "training", {}, "r1")
    wins: list[str] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        if stores[i % 2].claim(record.name, f"replica-{i}", 30):
            wins.append(f"replica-{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and stores[1].get(record.name).owner == wins[0]


def test_a_replica_takes_over_the_job_of_one_that_stopped_renewing(tmp_path: Path, db_url: str) -> None:
    """Two runners on one database (a shared PostgreSQL, or SQLite standing in for a restart): the
    first runs a job and dies (its heartbeat stops, its thread goes on); the second claims the job
    when the lease runs out and finishes it from what was written; the first's late writes are
    refused, so the operation holds one result — the second's."""
    step = threading.Event()

    def handler(ctx: OperationContext) -> dict:
        progress_file = ctx.work_dir / "done.txt"
        done = int(progress_file.read_text()) if progress_file.exists() else 0
        while done < 3:
            done += 1
            write_bytes_atomic(progress_file, str(done).encode())  # the other replica's thread may be reading it
            ctx.progress(done=done, total=3, force=True)
            step.wait(10)
            ctx.check_cancelled()
        return {"read": done}

    first = JobRunner("validator", open_operation_store(db_url), ArtifactStore((tmp_path / "store").as_uri()),
                      tmp_path, lease_seconds=0.6)
    first.register("validation", handler)
    name = first.submit("validation", {}, "job-1").name
    deadline = time.time() + 10
    while first.ops.get(name).metadata.get("done") != 1 and time.time() < deadline:
        time.sleep(0.05)
    assert first.ops.get(name).owner == first.owner  # first holds it and never renews (no heartbeat: "dead")
    time.sleep(0.8)
    second = JobRunner("validator", open_operation_store(db_url), ArtifactStore((tmp_path / "store").as_uri()),
                       tmp_path, lease_seconds=30)
    second.register("validation", handler)
    assert second.resume_unfinished() == [name]
    assert second.ops.get(name).owner == second.owner
    step.set()  # both threads go on; only the second may write
    record = second.wait(name, timeout=15)
    assert record.state == "SUCCEEDED" and record.result == {"read": 3}
    assert record.metadata["resumes"] == 1 and record.owner is None  # released when done
    second.shutdown(wait=True)
    first.shutdown(wait=True)
    assert first.ops.get(name).result == {"read": 3} and first.ops.get(name).state == "SUCCEEDED"


def test_on_a_shared_store_a_busy_replica_leaves_new_work_to_an_idle_one(tmp_path: Path, postgres_server) -> None:
    """The database is the work queue: two operations submitted to one replica (as the pipeline
    submits the shards of a generation through one connection) run on two replicas at once."""
    db_url = postgres_server.database_url("shared_queue")
    release = threading.Event()
    ran_by: dict[str, str] = {}

    def make(name: str) -> JobRunner:
        runner = JobRunner("generator", open_operation_store(db_url), ArtifactStore((tmp_path / "store").as_uri()),
                           tmp_path / name, lease_seconds=0.6)

        def handler(ctx: OperationContext) -> dict:
            ran_by[ctx.name] = name
            release.wait(15)
            return {"by": name}

        runner.register("generation", handler)
        return runner

    first, second = make("first"), make("second")
    first.resume_unfinished(), second.resume_unfinished()  # start their heartbeats, as a service start does
    one = first.submit("generation", {}, "shard-0").name
    two = first.submit("generation", {}, "shard-1").name
    deadline = time.time() + 10
    while len(ran_by) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert ran_by == {one: "first", two: "second"}  # both ran at once, one per replica
    assert first.ops.get(two).owner == second.owner
    release.set()
    assert first.wait(one, timeout=15).result == {"by": "first"}
    assert first.wait(two, timeout=15).result == {"by": "second"}
    first.shutdown(wait=True)
    second.shutdown(wait=True)


def test_a_store_written_before_leases_gets_the_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""CREATE TABLE operations (name TEXT PRIMARY KEY, service TEXT NOT NULL, kind TEXT NOT NULL,
        state TEXT NOT NULL, request TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}', result TEXT, error_code TEXT,
        error_message TEXT, request_id TEXT, create_time REAL NOT NULL, update_time REAL NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0);
        INSERT INTO operations VALUES ('trainer/operations/x', 'trainer', 'training', 'RUNNING', '{}', '{}', NULL,
        NULL, NULL, 'r', 1.0, 1.0, 0);""")
    conn.commit()
    conn.close()
    ops = open_operation_store(f"sqlite:///{path}")
    assert ops.get("trainer/operations/x").owner is None
    assert ops.claim("trainer/operations/x", "me", 30) and ops.get("trainer/operations/x").owner == "me"
