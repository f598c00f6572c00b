#!/usr/bin/env bash
# Builds skaffold (for `make dev` and the e2e suite's `skaffold run`) from its Go module into
# $MOLSTREAM_CACHE/bin, idempotently: a binary already at SKAFFOLD_VERSION is kept.
#
# Built inside a copy of the module's own source, not with `go install …@version`: skaffold's
# go.mod pins dependencies with replace directives, which only apply to the main module, and
# `go install` asks the proxy for the module's version list, which this test network refuses.
#
# Usage: tools/provision/skaffold.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${MOLSTREAM_CACHE:-$REPO/.cache}
BIN=$CACHE/bin
SKAFFOLD_VERSION=${SKAFFOLD_VERSION:-v2.16.1}  # kube.sh reads skaffold.yaml's schema from it
MODULE=github.com/GoogleContainerTools/skaffold/v2

export PATH=$PATH:/usr/local/go/bin
export GOMODCACHE=${GOMODCACHE:-$CACHE/go/mod}
export GOCACHE=${GOCACHE:-$CACHE/go/build}
export GOFLAGS="-modcacherw -p=${BUILD_JOBS:-2}"
export GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[skaffold.sh] %s\n' "$*" >&2; }

if [[ $("$BIN/skaffold" version 2>/dev/null) == "$SKAFFOLD_VERSION" ]]; then
    log "skaffold $SKAFFOLD_VERSION already built"
    exit 0
fi

log "building skaffold $SKAFFOLD_VERSION (a few minutes on 2 cores)"
start=$SECONDS
dir=$(cd /tmp && go mod download -json "$MODULE@$SKAFFOLD_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
src=$CACHE/src/skaffold-$SKAFFOLD_VERSION
rm -rf "$src"
mkdir -p "$(dirname "$src")" "$BIN"
cp -r "$dir" "$src"
chmod -R u+w "$src"
# The version stamp of skaffold's Makefile (`skaffold version` prints it).
(cd "$src" && nice -n 10 go build -trimpath -tags "timetzdata osusergo netgo" \
    -ldflags "-s -w -X $MODULE/pkg/skaffold/version.version=$SKAFFOLD_VERSION" \
    -o "$BIN/skaffold" ./cmd/skaffold)
rm -rf "$src"
log "skaffold $("$BIN/skaffold" version) built in $((SECONDS - start)) s"
