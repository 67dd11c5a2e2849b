"""``python -m services.evaluator``: serve the EvaluatorService until SIGTERM."""

from services.common.runtime import run_service
from services.evaluator.servicer import RESULT_TYPES, build


def main() -> None:
    run_service("evaluator", build, RESULT_TYPES)


if __name__ == "__main__":
    main()
