"""``python -m services.validator``: serve ValidatorService (configured by DISTILLERY_* variables)."""

from services.common.runtime import run_service
from services.validator.servicer import RESULT_TYPES, build


def main() -> None:
    run_service("validator", build, RESULT_TYPES)


if __name__ == "__main__":
    main()
