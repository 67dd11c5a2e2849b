"""One training run as a plain program, for Kubernetes Jobs and torchrun:

    python -m services.trainer.run_job --request request.json --out DIR
    torchrun --standalone --nproc_per_node=4 -m services.trainer.run_job --request request.json --out DIR

``request.json`` is a StartTrainingRequest in proto JSON. Checkpoints go to DIR/work (rerun the
same command after a crash or a preemption and it resumes), outputs go to the artifact store
(DISTILLERY_STORE_URL, else DIR/store) and the TrainingResult to DIR/result.json. Progress is
printed as one JSON object per line on stdout (rank 0 only). SIGTERM (a Job being evicted)
saves a checkpoint and exits with status 143."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from services.common import envs
from services.common.artifacts import ArtifactStore
from services.common.atomic import write_json_atomic
from services.common.config import ServiceConfig
from services.common.errors import Cancelled, DistilleryError, InvalidArgument
from services.common.references import ModelReferences
from services.trainer.devices import launcher_env
from services.trainer.handler import RESULT_FILE, TrainingJob, run_training
from services.trainer.servicer import job_from_json

log = logging.getLogger("services.trainer.run_job")


class CliContext:
    """The subset of OperationContext that run_training uses."""

    def __init__(self, output_prefix: str, out_dir: Path, store: ArtifactStore, rank: int) -> None:
        self.output_prefix = output_prefix
        self.work_dir = out_dir / "work"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.rank = rank
        self.stop = threading.Event()
        self._last_print = 0.0
        self._state: dict[str, Any] = {}

    def output_key(self, filename: str) -> str:
        return f"{self.output_prefix.rstrip('/')}/{filename}"

    def progress(self, *, done: float | None = None, total: float | None = None, stage: str | None = None,
                 unit: str | None = None, message: str | None = None, counters: dict[str, float] | None = None,
                 force: bool = False) -> None:
        if self.rank != 0:
            return
        for key, value in (("step", done), ("total", total), ("stage", stage), ("message", message)):
            if value is not None:
                self._state[key] = value
        self._state.update(counters or {})
        now = time.time()
        if force or now - self._last_print >= 1.0:
            self._last_print = now
            print(json.dumps({"time": round(now, 3), **self._state}), flush=True)

    def cancelled(self) -> bool:
        return self.stop.is_set()


def load_request(path: Path) -> tuple[TrainingJob, str]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{path}: cannot read the request: {exc}") from None
    return job_from_json(raw, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer.run_job", description=__doc__.split("\n\n")[0])
    parser.add_argument("--request", required=True, type=Path, help="StartTrainingRequest as JSON")
    parser.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, result.json)")
    parser.add_argument("--store", default="", help="artifact store URL (default: $DISTILLERY_STORE_URL or OUT/store)")
    parser.add_argument("--model-cache", type=Path, default=None, help="catalog model cache directory")
    parser.add_argument("--store-only", action="store_true",
                        help="refuse a train.uri outside the artifact store (by default a local file path is allowed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=envs.LOG_LEVEL.get(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _, rank, _ = launcher_env()
    try:
        job, output_prefix = load_request(args.request)
        config = ServiceConfig.from_env("trainer")
        store_url = args.store or envs.STORE_URL.get() or (args.out / "store").resolve().as_uri()
        store = ArtifactStore(store_url, cache_dir=args.out / "cache")
        ctx = CliContext(output_prefix, args.out, store, rank)
        signal.signal(signal.SIGTERM, lambda *_: ctx.stop.set())
        # The command line is the user's own process: any local model directory may be named
        # unless --store-only asks for the service's confinement.
        roots = config.model_roots if args.store_only else (Path("/"),)
        references = ModelReferences(store, Path(args.model_cache or config.model_cache or config.home / "models"),
                                     roots)
        result = run_training(ctx, job, references, config.device, allow_local_paths=not args.store_only)
    except Cancelled as exc:
        log.warning("%s", exc)
        return 143
    except DistilleryError as exc:
        log.error("%s: %s", exc.code, exc)
        return 2
    if rank == 0:
        write_json_atomic(args.out / RESULT_FILE, result)  # read as "the run finished": never half-written
        print(json.dumps({"result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
