#!/usr/bin/env bash
# Builds Helm (for `helm lint` / `helm template` in the tests) from the Go module
# proxy into .tools/bin, once: about 2 minutes on 2 cores, then cached.
# Needs Go >= 1.24 (the machine's own; Debian's golang package is too old).
set -euo pipefail
cd "$(dirname "$0")/.."
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
BIN="$PWD/.tools/bin"
# `go install` leaves the version out of helm's own `helm version`: a stamp file keeps it.
if [ -x "$BIN/helm" ] && [ "$(cat "$BIN/helm.version" 2>/dev/null)" = "$HELM_VERSION" ]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "building Helm needs Go (https://go.dev/dl/); or put helm $HELM_VERSION at $BIN/helm" >&2
  exit 1
fi
echo "building helm $HELM_VERSION into $BIN (once)"
mkdir -p "$BIN"
GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
echo "$HELM_VERSION" > "$BIN/helm.version"
"$BIN/helm" version --short
