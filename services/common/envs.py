"""Every environment variable Distillery reads, declared once, with its default and meaning.

Modelled on ``vllm/envs.py``: code never calls ``os.environ`` itself (entry points aside); it asks
a declared ``Variable`` for its typed value, so a newcomer finds every knob here, a bad value fails
with one error that names the variable, and ``docs/configuration.md`` is checked against this list
by a test. The Kubernetes ConfigMap (``k8s/base/configmap.yaml``) sets the same names.

Values are read when asked for (``VARIABLE.get()``), not at import, except where a module turns
one into a constant on purpose (the serving limits, fixed for the life of a process).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from services.common.errors import InvalidArgument

T = TypeVar("T")
Environment = Mapping[str, str]

# Default gRPC ports; metrics listen on port + 1000. The defaults of DISTILLERY_PORT and of every
# DISTILLERY_<SERVICE>_ADDR / _PORT.
DEFAULT_PORTS: dict[str, int] = {
    "pipeline": 50050,
    "generator": 50051,
    "validator": 50052,
    "trainer": 50053,
    "evaluator": 50054,
    "serving": 50055,
}
SERVICES: tuple[str, ...] = tuple(DEFAULT_PORTS)


def _integer(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("is not an integer") from None


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("is not a number") from None


def _flag(raw: str) -> bool:
    value = raw.lower()
    if value not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
        raise ValueError("must be 1 or 0 (true/false, yes/no, on/off)")
    return value in ("1", "true", "yes", "on")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ValueError(f"choose {' or '.join(options)}")
        return value

    return parse


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: its name, the value used when it is unset or empty, what it
    means, and how its text becomes a value (``parse`` raises ValueError with the reason)."""

    name: str
    default: T
    help: str
    parse: Callable[[str], T] = str  # type: ignore[assignment]

    def raw(self, env: Environment | None = None) -> str:
        """The text as set ("" when unset)."""
        return (os.environ if env is None else env).get(self.name, "")

    def is_set(self, env: Environment | None = None) -> bool:
        return self.raw(env) != ""

    def get(self, env: Environment | None = None) -> T:
        raw = self.raw(env)
        if raw == "":
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise InvalidArgument(f"environment variable {self.name}={raw!r} {exc}") from None


def _declare(name: str, default: T, help: str, parse: Callable[[str], T] = str) -> Variable[T]:  # type: ignore[assignment]
    variable = Variable(name, default, help, parse)
    if name in VARIABLES:
        raise RuntimeError(f"{name} declared twice")
    VARIABLES[name] = variable
    return variable


VARIABLES: dict[str, Variable] = {}

# ----- every service ------------------------------------------------------------------------------
HOME = _declare("DISTILLERY_HOME", None, "State folder (store, databases, model cache, logs); "
                "default ./.distillery in the working directory.", _path)
STORE_URL = _declare("DISTILLERY_STORE_URL", "", "Artifact store URL (file://…); default <home>/store.")
DB_URL = _declare("DISTILLERY_DB_URL", "", "Operations database URL: sqlite:///path (embedded; default "
                  "<home>/<service>.db) or postgresql://user:password@host:5432/db (shared by replicas).")
LEASE_SECONDS = _declare("DISTILLERY_LEASE_SECONDS", 30.0, "How long a replica holds a job without renewing "
                         "its lease; after that (the replica died) another replica of the service on the same "
                         "database takes the job over and resumes it. Renewed every third of it.", _number)
HOST = _declare("DISTILLERY_HOST", "127.0.0.1", "Address the gRPC server binds (0.0.0.0 in a pod).")
PORT = _declare("DISTILLERY_PORT", 0, "gRPC port; 0 = the service's default (50050-50055).", _integer)
METRICS_PORT = _declare("DISTILLERY_METRICS_PORT", 0, "Prometheus /metrics port; 0 = gRPC port + 1000, "
                        "-1 = none.", _integer)
MAX_MESSAGE_BYTES = _declare("DISTILLERY_MAX_MESSAGE_BYTES", 16 * 1024 * 1024,
                             "Largest gRPC message a server accepts or sends.", _integer)
MAX_WORKERS = _declare("DISTILLERY_MAX_WORKERS", 16, "gRPC server thread pool size.", _integer)
DEVICE = _declare("DISTILLERY_DEVICE", "auto", "Torch device for training/scoring: auto, cpu, cuda, cuda:N.")
MODEL_CACHE = _declare("DISTILLERY_MODEL_CACHE", None, "Where catalog models are materialized "
                       "(GGUF → safetensors); default <home>/models for services, <repo>/.cache/models "
                       "for the catalog command and the tests.", _path)
MODEL_ROOTS = _declare("DISTILLERY_MODEL_ROOTS", "", "Local folders (os.pathsep-separated) a request may "
                       "name as a model path, besides the store and the model cache.")
LOG_LEVEL = _declare("DISTILLERY_LOG_LEVEL", "INFO", "Python logging level of service processes.")
DEBUG = _declare("DISTILLERY_DEBUG", False, "1: the CLI prints tracebacks instead of one-line errors.", _flag)

# ----- security -----------------------------------------------------------------------------------
AUTH_TOKEN = _declare("DISTILLERY_AUTH_TOKEN", "", "Bearer token every server requires and every client sends.")
TLS_CERT = _declare("DISTILLERY_TLS_CERT", None, "Server certificate (PEM); with TLS_KEY turns TLS on.", _path)
TLS_KEY = _declare("DISTILLERY_TLS_KEY", None, "Server private key (PEM).", _path)
TLS_CA = _declare("DISTILLERY_TLS_CA", None, "CA (PEM) clients trust, and that signs client certificates "
                  "under mutual TLS; default: DISTILLERY_TLS_CERT.", _path)
TLS_CLIENT_CERT = _declare("DISTILLERY_TLS_CLIENT_CERT", None, "Client certificate (PEM) for mutual TLS.", _path)
TLS_CLIENT_KEY = _declare("DISTILLERY_TLS_CLIENT_KEY", None, "Client private key (PEM) for mutual TLS.", _path)
TLS_SERVER_NAME = _declare("DISTILLERY_TLS_SERVER_NAME", "", "Name to check server certificates against "
                           "when it is not the host dialled (an IP, a port-forward).")
TLS_CLIENT_AUTH = _declare("DISTILLERY_TLS_CLIENT_AUTH", "none", "require: servers demand a client "
                           "certificate signed by DISTILLERY_TLS_CA (mutual TLS).", _choice("none", "require"))

# ----- where the services are ---------------------------------------------------------------------
SERVICE_ADDR: dict[str, Variable[str]] = {
    name: _declare(f"DISTILLERY_{name.upper()}_ADDR", f"127.0.0.1:{port}", f"host:port of the {name} service.")
    for name, port in DEFAULT_PORTS.items()
}
SERVICE_PORT: dict[str, Variable[int]] = {
    name: _declare(f"DISTILLERY_{name.upper()}_PORT", port, f"Port `distillery up` starts the {name} on.", _integer)
    for name, port in DEFAULT_PORTS.items()
}
PYTHON: dict[str, Variable[Path | None]] = {
    name: _declare(f"DISTILLERY_{name.upper()}_PYTHON", None, f"Interpreter for services of the {name} "
                   f"environment (default .venvs/{name}/bin/python).", _path)
    for name in ("core", "vllm")
}

# ----- the review page (pipeline) -----------------------------------------------------------------
REVIEW_PORT = _declare("DISTILLERY_REVIEW_PORT", 8050, "Port of the pipeline's review page (`distillery review`); "
                       "-1 turns it off.", _integer)
REVIEW_URL = _declare("DISTILLERY_REVIEW_URL", "", "Base URL `distillery review` opens (a port-forward, an "
                      "ingress); default: the pipeline's host on DISTILLERY_REVIEW_PORT.")

# ----- generator ----------------------------------------------------------------------------------
TEACHER = _declare("DISTILLERY_TEACHER", "", "Teacher used when a task names none (catalog name or path).")
GENERATOR_WARMUP = _declare("DISTILLERY_GENERATOR_WARMUP", False, "1: start the vLLM engine at boot, "
                            "not on the first job.", _flag)
VLLM_KVCACHE_GIB = _declare("DISTILLERY_VLLM_KVCACHE_GIB", "2", "vLLM-CPU KV cache size in GiB "
                            "(becomes VLLM_CPU_KVCACHE_SPACE).")
VLLM_MAX_MODEL_LEN = _declare("DISTILLERY_VLLM_MAX_MODEL_LEN", 4096, "Teacher context length.", _integer)
VLLM_DTYPE = _declare("DISTILLERY_VLLM_DTYPE", "", "Teacher dtype; default: auto on CUDA, bfloat16 "
                      "with AVX-512 BF16, else float32.")
VLLM_EAGER = _declare("DISTILLERY_VLLM_EAGER", True, "1: no CUDA graphs / torch.compile (fast start).", _flag)
VLLM_TENSOR_PARALLEL_SIZE = _declare("DISTILLERY_VLLM_TENSOR_PARALLEL_SIZE", 1, "GPUs one teacher engine "
                                     "spans (vLLM tensor parallelism); the GPU overlay requests as many.",
                                     _integer)

# ----- evaluator, serving -------------------------------------------------------------------------
EVALUATOR_THREADS = _declare("DISTILLERY_EVALUATOR_THREADS", 0, "Torch/ONNX threads for scoring; 0 = all cores.",
                             _integer)
SERVING_THREADS = _declare("DISTILLERY_SERVING_THREADS", 0, "ONNX Runtime intra-op threads; 0 = all cores.",
                           _integer)
SERVING_MAX_TOKENS = _declare("DISTILLERY_SERVING_MAX_TOKENS", 1024, "Most new tokens one request may ask for.",
                              _integer)
SERVING_MAX_INPUT_TOKENS = _declare("DISTILLERY_SERVING_MAX_INPUT_TOKENS", 2048, "Longest prompt (tokens) "
                                    "serving accepts.", _integer)
SERVING_MAX_INPUTS = _declare("DISTILLERY_SERVING_MAX_INPUTS", 64, "Most inputs in one Predict request.", _integer)
SERVING_MAX_BATCH = _declare("DISTILLERY_SERVING_MAX_BATCH", 8, "Most requests the batcher runs together.",
                             _integer)
SERVING_BATCH_WAIT_MS = _declare("DISTILLERY_SERVING_BATCH_WAIT_MS", 5.0, "How long the batcher waits to fill "
                                 "a batch.", _number)
SERVING_MAX_QUEUE = _declare("DISTILLERY_SERVING_MAX_QUEUE", 256, "Requests waiting beyond this get "
                             "RESOURCE_EXHAUSTED (HTTP 429).", _integer)
LLAMA_CPP_DIR = _declare("DISTILLERY_LLAMA_CPP_DIR", None, "llama.cpp source tree whose convert_hf_to_gguf.py "
                         "makes the bundle's GGUF files (default: what scripts/build-llama-cpp.sh unpacks under "
                         ".cache/llama.cpp).", _path)
LLAMACPP_PYTHON = _declare("DISTILLERY_LLAMACPP_PYTHON", None, "Interpreter with llama-cpp-python, for Q4_K_M "
                           "GGUFs and llama.cpp runs (default .venvs/llamacpp/bin/python).", _path)
HTTP_PORT = _declare("DISTILLERY_HTTP_PORT", 8000, "Port of the serving HTTP gateway (OpenAI and KServe v2).",
                     _integer)

# ----- training on Kubernetes ---------------------------------------------------------------------
TRAINER_MODE = _declare("DISTILLERY_TRAINER_MODE", "inprocess", "inprocess: the trainer trains in its own "
                        "process. k8s-job: each training runs as a Kubernetes batch/v1 Job that the trainer "
                        "creates, follows and deletes on cancel (services/trainer/job_mode.py).",
                        _choice("inprocess", "k8s-job"))
TRAINER_JOB_IMAGE = _declare("DISTILLERY_TRAINER_JOB_IMAGE", "", "Image of training Jobs (k8s-job mode).")
TRAINER_JOB_GPUS = _declare("DISTILLERY_TRAINER_JOB_GPUS", 0, "nvidia.com/gpu per training Job.", _integer)
TRAINER_JOB_NODES = _declare("DISTILLERY_TRAINER_JOB_NODES", 1, "Nodes (pods) one training Job spans, each with "
                             "DISTILLERY_TRAINER_JOB_GPUS GPUs; > 1: an Indexed Job whose pods run torchrun with a "
                             "static rendezvous on pod 0 (needs a store every node mounts: ReadWriteMany or s3://).",
                             _integer)
TRAINER_JOB_CPU = _declare("DISTILLERY_TRAINER_JOB_CPU", "4", "CPU request of training Jobs.")
TRAINER_JOB_MEMORY = _declare("DISTILLERY_TRAINER_JOB_MEMORY", "32Gi", "Memory request and limit of training Jobs.")
TRAINER_JOB_NODE_SELECTOR = _declare("DISTILLERY_TRAINER_JOB_NODE_SELECTOR", "", "a=b,c=d node selector "
                                     "of training Jobs.")
K8S_NAMESPACE = _declare("DISTILLERY_K8S_NAMESPACE", "", "Namespace of training Jobs; default the pod's own.")

# ----- set by others, read by us ------------------------------------------------------------------
KUBERNETES_SERVICE_HOST = _declare("KUBERNETES_SERVICE_HOST", "", "Set by Kubernetes in every pod: "
                                   "use the in-cluster configuration.")
WORLD_SIZE = _declare("WORLD_SIZE", 1, "Set by torchrun: processes in a distributed training run.", _integer)
RANK = _declare("RANK", 0, "Set by torchrun: this process's global rank.", _integer)
LOCAL_RANK = _declare("LOCAL_RANK", 0, "Set by torchrun: this process's rank on its node.", _integer)


def secret(name: str, env: Environment | None = None) -> str:
    """The value of a variable whose name the user configured (a task's ``api_key_env``)."""
    return (os.environ if env is None else env).get(name, "")


def snapshot() -> dict[str, str]:
    """A copy of this process's environment, for child processes that inherit it."""
    return dict(os.environ)


def set_defaults(values: Mapping[str, str]) -> None:
    """Set third-party variables a library reads at import (vLLM, tokenizers) unless the user set
    them; the only write to the environment Distillery makes."""
    for name, value in values.items():
        os.environ.setdefault(name, value)


def markdown_table() -> str:
    """The table docs/configuration.md carries (a test keeps the two equal)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable in VARIABLES.values():
        default = "" if variable.default in (None, "") else str(variable.default)
        if isinstance(variable.default, bool):
            default = "1" if variable.default else "0"
        lines.append(f"| `{variable.name}` | {f'`{default}`' if default else '—'} | {variable.help} |")
    return "\n".join(lines)
