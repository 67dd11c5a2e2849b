#!/usr/bin/env bash
# Regenerates the Python stubs (with .pyi) from protos/. Reproducible: the output depends only on
# the .proto files and the pinned grpcio-tools, so CI regenerates and diffs.
# protos/google/ holds vendored copies of googleapis contracts (so buf and protoc run offline);
# their Python modules come from googleapis-common-protos, so no code is generated for them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venvs/core/bin/python}
OUT=${OUT:-services/common/genproto}
rm -rf "$OUT/distillery" "$OUT/inference"
mkdir -p "$OUT"
"$PY" -m grpc_tools.protoc -I protos \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  protos/distillery/v1/*.proto protos/inference/*.proto
for d in "$OUT/distillery" "$OUT/distillery/v1" "$OUT/inference"; do touch "$d/__init__.py"; done
echo "stubs written to $OUT"
