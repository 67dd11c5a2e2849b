"""The README's first command (`make demo`): start the platform as local processes, distil an
example task on the bundled tiny models, serve the student, show a prediction and the report.

    .venvs/core/bin/python -m services.pipeline.demo [TASK_DIR] [--set SECTION.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from services.common.taskspec import load_task
from services.pipeline import cli
from services.pipeline.processes import LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task_dir", nargs="?", default="examples/news-topic")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    started = time.time()
    home = cli._home()
    print(f"== 1/4 starting the services (state in {home}) ==")
    try:
        LocalCluster(home).up(timeout=600)
        print(f"== 2/4 distilling {args.task_dir} ==")
        bundle = load_task(Path(args.task_dir))
        name = cli._submit(bundle, cli._parse_overrides(args.set))
        job = cli.follow(name)
        cli.print_job(job)
        if job.state in ("FAILED", "CANCELLED"):
            print(f"demo: the job ended {job.state}: {job.message}", file=sys.stderr)
            return 1
        print("== 3/4 asking the served student ==")
        examples = [ex for ex in bundle.test[:3]]
        model = job.served_model.partition(":")[0]
        cli.cmd_predict(argparse.Namespace(text=[ex.input for ex in examples], model=model, version="", max_tokens=64))
        print("expected:", json.dumps([ex.output for ex in examples]))
        print("== 4/4 the evaluation report ==")
        cli.cmd_report(argparse.Namespace(job=job.name))
    except (cli.CliError, Exception) as exc:  # one line for the user; the logs have the rest
        print(f"demo: {exc}\n(service logs: {home / 'logs'})", file=sys.stderr)
        return 1
    minutes = (time.time() - started) / 60
    print(f"\ndemo finished in {minutes:.1f} min. The services are still running: try "
          f"`.venvs/core/bin/distillery predict --model {model} \"...\"`, the OpenAI API on http://127.0.0.1:8000/v1, "
          "and stop them with `make down`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
