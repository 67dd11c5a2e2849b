#!/usr/bin/env bash
# Build a kube-apiserver binary from Debian's `kubernetes` source package, for the opt-in
# tests/k8s/test_job_launcher_apiserver.py (`make test-k8s`).
#
# Why from source: no Debian package ships kube-apiserver (only kubectl / etcd-server), and the
# machines this project runs on reach package registries only, so an upstream release tarball
# cannot be downloaded. Debian's source package is reachable through apt (deb-src).
#
# Usage:  sudo scripts/build-kube-apiserver.sh [OUTPUT_DIR]   (default: .cache/kube, git-ignored)
# Then:   make test-k8s     (runs this script, then the tests with .cache/kube/kube-apiserver)
#
# Needs root (apt-get), ~2 GB of disk and about 16 minutes on 2 busy cores (measured: Debian bookworm's
# kubernetes 1.20.5+really1.20.2 with Go 1.19 gives "Kubernetes v1.20.2"). Idempotent: if the
# binary already exists it only prints its path. KUBE_BUILD_DIR (default /tmp/distillery-kube-build)
# holds the source and Go cache; delete it afterwards to get the disk space back.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# .cache/ is git-ignored, so the ~100 MB binary is never committed by accident.
OUT_DIR="${1:-${REPO_ROOT}/.cache/kube}"
WORK_DIR="${KUBE_BUILD_DIR:-/tmp/distillery-kube-build}"
mkdir -p "${OUT_DIR}"
OUT_DIR="$(cd "${OUT_DIR}" && pwd)"

if [[ -x "${OUT_DIR}/kube-apiserver" ]]; then
  echo "already built: ${OUT_DIR}/kube-apiserver"
  exit 0
fi

if [[ "$(id -u)" != "0" ]]; then
  echo "this script installs Debian packages (golang-go, rsync, etcd-server, dpkg-dev): run it as root" >&2
  exit 1
fi

# 1. deb-src entries: Debian images ship only binary `deb` lines. Mirror the existing deb822
#    sources file as a deb-src one instead of editing it, so the change is easy to undo.
SRC_LIST=/etc/apt/sources.list.d/distillery-deb-src.sources
if ! apt-get source --print-uris kubernetes >/dev/null 2>&1; then
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "${SRC_LIST}"
  else
    grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/distillery-deb-src.list
  fi
  apt-get update -qq
fi

# 2. Toolchain. golang-go is whatever Go the release ships (bookworm: 1.19, which is what Debian
#    itself built this kubernetes with); rsync is used by the Kubernetes make rules; etcd-server is
#    the datastore the test starts next to the apiserver.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  golang-go rsync etcd-server dpkg-dev make git ca-certificates >/dev/null

# 3. Source: `apt-get source` unpacks and applies Debian's patches (dpkg-source).
mkdir -p "${WORK_DIR}"
cd "${WORK_DIR}"
SRC_DIR="$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
if [[ -z "${SRC_DIR}" ]]; then
  apt-get source -qq kubernetes
  SRC_DIR="$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
fi
cd "${SRC_DIR}"

# 4. Version stamping: the tarball is not a git checkout, so hack/lib/version.sh would report
#    v0.0.0; derive the version from debian/changelog (e.g. 1.20.5+really1.20.2-1.1 -> v1.20.2).
DEB_VERSION="$(dpkg-parsechangelog -S Version)"
UPSTREAM="${DEB_VERSION%%-*}"
UPSTREAM="${UPSTREAM##*really}"
UPSTREAM="${UPSTREAM%%+*}"
export KUBE_GIT_VERSION="v${UPSTREAM}"
export KUBE_GIT_TREE_STATE=clean
export KUBE_GIT_COMMIT=0000000000000000000000000000000000000000

# 5. Build only the apiserver, statically (CGO off: no libc coupling, runs on any amd64 box).
#    GOFLAGS=-mod=vendor: the source package vendors its dependencies and the build must not
#    reach the Go module proxy. GOTOOLCHAIN=local stops a newer Go from fetching another one.
export CGO_ENABLED=0 GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off
export GOCACHE="${WORK_DIR}/gocache"
time make WHAT=cmd/kube-apiserver KUBE_BUILD_PLATFORMS=linux/amd64

BIN="$(find _output -type f -name kube-apiserver -perm -u+x | head -n1)"
if [[ -z "${BIN}" ]]; then
  echo "build finished but no kube-apiserver binary was found under $(pwd)/_output" >&2
  exit 1
fi
install -m 0755 "${BIN}" "${OUT_DIR}/kube-apiserver"
"${OUT_DIR}/kube-apiserver" --version
echo "built: ${OUT_DIR}/kube-apiserver"
echo "etcd:  $(command -v etcd || echo /usr/bin/etcd)"
