#!/usr/bin/env bash
# The control-plane images a kind node of Kubernetes $KUBE_VERSION runs, built offline from
# their Go modules under the names kubeadm asks for, saved to one archive that node-image.sh
# preloads into the node's containerd:
#   registry.k8s.io/kube-{apiserver,controller-manager,scheduler,proxy}:$KUBE_VERSION
#   registry.k8s.io/etcd:$ETCD_TAG, registry.k8s.io/coredns/coredns:$COREDNS_VERSION,
#   registry.k8s.io/pause:$PAUSE_VERSION (containerd's sandbox image too)
# Each is one static binary on an empty filesystem (docker import), except kube-proxy, which
# needs iptables, nft and conntrack: it gets the node's own Debian root filesystem.
#
# Usage: bash tools/provision/e2e/images.sh OUT.tar KIND_BASE_ROOTFS_TAR
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=$1 rootfs_tar=$2
docker=${DOCKER:-/usr/bin/docker}
CACHE=$PWD/.cache
BIN=$CACHE/e2e/bin
KUBE_VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' tools/k8s-node/go.mod)
ETCD_TAG=3.5.24-0            # kubeadm v1.32's SupportedEtcdVersion
COREDNS_VERSION=v1.11.3      # kubeadm v1.32's CoreDNSVersion
PAUSE_VERSION=3.10           # kubeadm v1.32's PauseVersion, kind's containerd sandbox_image
LOCAL_PATH_VERSION=v0.0.30   # kind v0.33 pins v0.0.34, which is not served here; same flags
LOCAL_PATH_IMAGE=molstream-e2e/local-path-provisioner:$LOCAL_PATH_VERSION
LOCAL_PATH_HELPER=molstream-e2e/local-path-helper:bookworm  # node-image.sh writes both names
# The network policy engine (node-image.sh says why this one): its firewall only.
KUBE_ROUTER_VERSION=v2.1.0
KUBE_ROUTER_IMAGE=molstream-e2e/kube-router:$KUBE_ROUTER_VERSION
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOFLAGS="-modcacherw -p=${BUILD_JOBS:-2}"
export GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$BIN"
log() { printf '[e2e images] %s\n' "$*" >&2; }

source tools/provision/k8s-ldflags.sh  # k8s_ldflags, as kube.sh

for cmd in kubeadm kubelet kube-controller-manager kube-scheduler kube-proxy; do
  version=(--version)
  [[ $cmd == kubeadm ]] && version=(version -o short)
  if [[ $("$BIN/$cmd" "${version[@]}" 2>/dev/null) != *"$KUBE_VERSION"* ]]; then
    log "building $cmd $KUBE_VERSION"
    (cd tools/k8s-node && nice -n 10 go build -trimpath -ldflags "$(k8s_ldflags)" \
      -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  fi
done
[[ -x $CACHE/bin/kube-apiserver ]] || { log "run tools/provision/kube.sh first"; exit 1; }
if [[ $("$BIN/etcd" --version 2>/dev/null) != *"${ETCD_TAG%-*}"* ]]; then
  log "building etcd ${ETCD_TAG%-*}"
  (cd tools/etcd && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" \
    go.etcd.io/etcd/server/v3)
fi
if [[ $("$BIN/coredns" -version 2>/dev/null) != *"${COREDNS_VERSION#v}"* ]]; then
  log "building coredns $COREDNS_VERSION"
  (cd /tmp && GOBIN=$BIN nice -n 10 go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION")
fi
if [[ ! -x $BIN/local-path-provisioner ]]; then
  log "building local-path-provisioner $LOCAL_PATH_VERSION"
  (cd /tmp && GOBIN=$BIN nice -n 10 go install -trimpath -ldflags "-s -w" \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION")
fi
if [[ $("$BIN/kube-router" --version 2>/dev/null) != *"$KUBE_ROUTER_VERSION"* ]]; then
  log "building kube-router $KUBE_ROUTER_VERSION"
  (cd /tmp && GOBIN=$BIN nice -n 10 go install -trimpath \
    -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION")
fi
if [[ ! -x $BIN/pause ]]; then
  log "building pause (C, from the kubernetes module's build/pause)"
  k8s_dir=$(cd tools/k8s-node && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-molstream" -o "$BIN/pause" \
    "$k8s_dir/build/pause/linux/pause.c"
fi

work=$CACHE/e2e/images-work
rm -rf "$work"
# scratch_image NAME FILE PATH_IN_IMAGE [docker import --change …]: one static binary.
scratch_image() {
  local name=$1 file=$2 dest=$3
  shift 3
  mkdir -p "$work/$name/$(dirname "$dest")"
  cp "$file" "$work/$name/$dest"
  tar -C "$work/$name" -c . | "$docker" import \
    --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$@" - "$name" >/dev/null
}
r=registry.k8s.io
scratch_image "$r/kube-apiserver:$KUBE_VERSION" "$CACHE/bin/kube-apiserver" usr/local/bin/kube-apiserver
scratch_image "$r/kube-controller-manager:$KUBE_VERSION" "$BIN/kube-controller-manager" \
  usr/local/bin/kube-controller-manager
scratch_image "$r/kube-scheduler:$KUBE_VERSION" "$BIN/kube-scheduler" usr/local/bin/kube-scheduler
scratch_image "$r/etcd:$ETCD_TAG" "$BIN/etcd" usr/local/bin/etcd
scratch_image "$r/coredns/coredns:$COREDNS_VERSION" "$BIN/coredns" coredns \
  --change 'ENTRYPOINT ["/coredns"]'
scratch_image "$r/pause:$PAUSE_VERSION" "$BIN/pause" pause \
  --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535'
scratch_image "$LOCAL_PATH_IMAGE" "$BIN/local-path-provisioner" usr/local/bin/local-path-provisioner
# kube-proxy and kube-router: the Debian root filesystem (iptables, nft, ipset, conntrack) and
# both binaries, one image under two names.
mkdir -p "$work/proxy/usr/local/bin"
tar -C "$work/proxy" -xf "$rootfs_tar"
cp "$BIN/kube-proxy" "$BIN/kube-router" "$work/proxy/usr/local/bin/"
rm -rf "$work"/proxy/usr/share/{doc,man,locale} "$work"/proxy/var/cache/apt/archives/*.deb
tar -C "$work/proxy" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$r/kube-proxy:$KUBE_VERSION" >/dev/null
# The storage provisioner's helper pod runs sh, mkdir and rm: the same Debian filesystem.
"$docker" tag "$r/kube-proxy:$KUBE_VERSION" "$LOCAL_PATH_HELPER"
"$docker" tag "$r/kube-proxy:$KUBE_VERSION" "$KUBE_ROUTER_IMAGE"
rm -rf "$work"

names=("$r/kube-apiserver:$KUBE_VERSION" "$r/kube-controller-manager:$KUBE_VERSION"
       "$r/kube-scheduler:$KUBE_VERSION" "$r/kube-proxy:$KUBE_VERSION" "$r/etcd:$ETCD_TAG"
       "$r/coredns/coredns:$COREDNS_VERSION" "$r/pause:$PAUSE_VERSION" "$LOCAL_PATH_IMAGE"
       "$LOCAL_PATH_HELPER" "$KUBE_ROUTER_IMAGE")
"$docker" save -o "$out.tmp" "${names[@]}"
mv "$out.tmp" "$out"
log "saved ${#names[@]} images to $out ($(du -h "$out" | cut -f1))"
