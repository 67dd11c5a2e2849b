#!/usr/bin/env bash
# llama.cpp for the GGUF export and its tests (issue 21) and the serving benchmark's llama.cpp row
# (issue 18), kept out of the default setup because it compiles C++ (~7-8 minutes on 2 cores).
#
#   scripts/build-llama-cpp.sh source   unpack llama-cpp-python's sdist into .cache/llama.cpp
#                                       (the vendored llama.cpp: convert_hf_to_gguf.py and its
#                                       gguf-py; no compiler needed; `make setup` runs this)
#   scripts/build-llama-cpp.sh env      also build .venvs/llamacpp: llama-cpp-python compiled from
#                                       that source for this CPU (GGML_NATIVE), used to quantize
#                                       GGUFs (Q4_K_M) and to run them
#
# Idempotent: a step whose result exists is skipped. Pinned: the converter and the runtime come
# from one llama.cpp revision, the one llama-cpp-python ${VERSION} vendors.
set -euo pipefail
VERSION=0.3.36
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
SRC=.cache/llama.cpp
PY=${PYTHON:-python3}
mode=${1:-source}

if [ ! -f "$SRC/llama_cpp_python-$VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" ]; then
  echo "llama.cpp: fetching llama-cpp-python $VERSION's source (the vendored llama.cpp and its GGUF converter)"
  mkdir -p "$SRC/download"
  "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SRC/download" 2>/dev/null \
    || .venvs/core/bin/pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SRC/download"
  tar xzf "$SRC/download/llama_cpp_python-$VERSION.tar.gz" -C "$SRC"
fi
echo "llama.cpp: converter at $SRC/llama_cpp_python-$VERSION/vendor/llama.cpp/convert_hf_to_gguf.py"
[ "$mode" = source ] && exit 0

ENV=.venvs/llamacpp
if [ -x "$ENV/bin/python" ] && "$ENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "llama.cpp: $ENV is built"; exit 0
fi
echo "llama.cpp: building $ENV (compiles llama.cpp for this CPU: ~7-8 minutes on 2 cores)"
"$PY" -m venv "$ENV"
"$ENV/bin/pip" install -q --upgrade pip >/dev/null
# GGML_NATIVE: the kernels for this CPU's own instruction set (AVX-512, VNNI where it has them).
CMAKE_ARGS="-DGGML_NATIVE=ON" "$ENV/bin/pip" install -q --no-cache-dir "numpy>=1.26" \
  "$SRC/download/llama_cpp_python-$VERSION.tar.gz"
"$ENV/bin/python" -c "import llama_cpp; print('llama.cpp: built llama-cpp-python', llama_cpp.__version__)"
