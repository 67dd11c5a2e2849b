# syntax=docker/dockerfile:1
# distillery/generator:0.1.0-cuda - the teacher: vLLM writes synthetic training data.
# Environment: vllm (CUDA). Installs only services/generator/requirements-gpu.txt (which pulls in
# services/common/requirements.txt) so each service carries only what it needs.
#
# Build from the repository root (run `make protos` first: generated stubs are part of services/):
#   docker build -f docker/generator.cuda.Dockerfile -t distillery/generator:0.1.0-cuda .
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv with the service's dependencies -------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Requirements before code, so that editing code does not reinstall the dependencies.
COPY services/common/requirements.txt services/common/requirements.txt
COPY services/generator/requirements-gpu.txt services/generator/requirements-gpu.txt
# requirements-gpu.txt pins vllm, the CUDA build, which brings its own CUDA torch; the NVIDIA
# driver comes from the host through the NVIDIA container runtime, the CUDA libraries from the
# wheels' nvidia-* dependencies. (torchvision stays: it matches vllm's CUDA torch here.)
RUN pip install -r services/generator/requirements-gpu.txt \
 && python -c "import vllm"

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# tini as PID 1: forwards SIGTERM to Python and reaps the worker processes it starts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 distillery \
 && useradd --uid 10001 --gid 10001 --home-dir /home/distillery --create-home \
      --shell /usr/sbin/nologin distillery \
 && mkdir -p /var/lib/distillery/store /home/distillery/.cache \
 && chown -R 10001:10001 /var/lib/distillery /home/distillery
COPY --from=build /opt/venv /opt/venv
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
    DISTILLERY_PORT=50051 \
    DISTILLERY_METRICS_PORT=51051 \
    DISTILLERY_DEVICE=cuda \
    TRITON_CACHE_DIR=/home/distillery/.cache/triton \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    VLLM_CACHE_ROOT=/var/lib/distillery/vllm-cache
# Byte-compile now: on Kubernetes the root filesystem is read-only, so Python cannot cache .pyc.
RUN python -m compileall -q services
# Numeric user so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051 51051
ENTRYPOINT ["tini", "--", "python", "-m", "services.generator"]
