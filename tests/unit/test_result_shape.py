"""Result conversion is strict (issue 19): a handler's result that its kind's message cannot
hold fails the job, naming the field, instead of the field vanishing when the result is packed."""

from __future__ import annotations

from pathlib import Path

from distillery.v1 import generator_pb2

from services.common.artifacts import ArtifactStore
from services.common.jobs import JobRunner
from services.common.operations import open_operation_store
from services.common.operations_servicer import operations_registrations, record_to_operation

RESULT_TYPES = {"generation": generator_pb2.GenerationResult}


def _runner(tmp_path: Path, result: dict) -> JobRunner:
    runner = JobRunner("generator", open_operation_store(f"sqlite:///{tmp_path / 'ops.db'}"),
                       ArtifactStore((tmp_path / "store").as_uri()), tmp_path)
    runner.register("generation", lambda ctx: result)
    operations_registrations(runner, RESULT_TYPES)  # what start_service does: installs the check
    return runner


def test_a_misspelt_result_field_fails_the_job_by_name(tmp_path: Path) -> None:
    runner = _runner(tmp_path, {"generated": 3, "rejectd_count": 1})
    done = runner.wait(runner.submit("generation", {}, "r1").name, timeout=10)
    assert done.state == "FAILED" and done.error_code == "INTERNAL"
    assert "rejectd_count" in done.error_message and "distillery.v1.GenerationResult" in done.error_message
    runner.shutdown()


def test_a_well_formed_result_is_packed_whole(tmp_path: Path) -> None:
    runner = _runner(tmp_path, {"generated": 3, "rejected_count": 1, "label_source": "target"})
    operation = record_to_operation(runner.wait(runner.submit("generation", {}, "r2").name, timeout=10), RESULT_TYPES)
    result = generator_pb2.GenerationResult()
    assert operation.response.Unpack(result)
    assert (result.generated, result.rejected_count, result.label_source) == (3, 1, "target")
    runner.shutdown()
