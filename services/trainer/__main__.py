"""``python -m services.trainer``: the trainer gRPC service (port 50053 by default)."""

from services.common.runtime import run_service
from services.trainer.servicer import RESULT_TYPES, build

if __name__ == "__main__":
    run_service("trainer", build, RESULT_TYPES)
