#!/usr/bin/env bash
# Contract checks: buf lint, buf breaking against the previous commit of main, and stubs that are
# exactly what `make protos` generates (nobody hand-edits generated code).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=.cache/tools/node_modules/.bin/buf
if [ -x "$BUF" ]; then
  (cd protos && ../$BUF lint)
  echo "protos: buf lint ok"
  if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:protos/buf.yaml 2>/dev/null; then
    $BUF breaking protos --against ".git#ref=HEAD~1,subdir=protos"
    echo "protos: buf breaking (against HEAD~1) ok"
  else
    echo "protos: no previous commit with protos/: buf breaking skipped"
  fi
else
  echo "protos: buf not installed (npm missing?): lint and breaking checks skipped" >&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OUT="$tmp" PYTHON=${PYTHON:-.venvs/core/bin/python} scripts/gen_protos.sh >/dev/null
if ! diff -r -q "$tmp" services/common/genproto -x __pycache__ >/dev/null; then
  diff -r "$tmp" services/common/genproto -x __pycache__ | head -20
  echo "protos: generated stubs are stale: run 'make protos' and commit" >&2
  exit 1
fi
echo "protos: generated stubs are up to date"
