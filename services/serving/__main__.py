"""``python -m services.serving``: gRPC (ServingService + OIP v2 + Operations) and, in a thread of
the same process, the OpenAI-compatible HTTP gateway on DISTILLERY_HTTP_PORT (default 8000)."""

from services.common.runtime import run_service
from services.serving.servicer import RESULT_TYPES, build

if __name__ == "__main__":
    run_service("serving", build, RESULT_TYPES)
