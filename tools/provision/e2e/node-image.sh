#!/usr/bin/env bash
# The offline kind node image, as `kind build node-image` lays it out (its module's
# pkg/build/nodeimage), which cannot run here: it fetches etcd, CoreDNS, pause, kindnetd and
# the storage provisioner from registries. Instead, on the base of node-base.sh:
#   - kubeadm, kubelet and kubectl in /usr/bin, the version in /kind/version;
#   - the images of images.sh imported into the node's containerd (k8s.io namespace) and pinned;
#   - networking: kindnetd is not to be had (an untagged nested module of kind), so the node
#     carries a static CNI config (ptp + host-local + portmap, the pod subnet kind gives a
#     single node): one node only;
#   - NetworkPolicies: /kind/manifests/default-cni.yaml runs kube-router's firewall (v2.1.0, the
#     one version the module proxy serves; its advisory GHSA-phqm-jgc3-qf8g is in the service
#     proxy, which stays off). sigs.k8s.io/kube-network-policies cannot run on these VMs: it
#     queues packets with nftables' `queue` expression, and their kernel lacks CONFIG_NFT_QUEUE
#     (`nft add rule inet t c queue num 100` fails "No such file or directory"). kube-router
#     needs only iptables and ipset, which the kernel has;
#   - storage: kind's own local-path-provisioner manifest (its module's
#     pkg/build/nodeimage/const_storage.go) with the provisioner built here (v0.0.30: kind's
#     v0.0.34 is not served) and the helper pod on the node's Debian filesystem. (Without it
#     kind falls back to kube-controller-manager's host-path provisioner, whose root-owned
#     0755 directories a non-root pod cannot write.)
#
# Usage: bash tools/provision/e2e/node-image.sh [IMAGE]   (prints the image's name; cached: a
# second run with the same inputs does nothing)
set -euo pipefail
cd "$(dirname "$0")/../../.."
docker=${DOCKER:-/usr/bin/docker}
CACHE=$PWD/.cache
KUBE_VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' tools/k8s-node/go.mod)
KIND_VERSION=${KIND_VERSION:-v0.33.0}  # its base image files are what node-base.sh copies
image=${1:-molstream-e2e/node:$KUBE_VERSION}
base=molstream-e2e/kind-base:bookworm
log() { printf '[e2e node] %s\n' "$*" >&2; }

# Rebuilt when any script that makes it changes.
stamp=$(cat tools/provision/e2e/{node-base,images,node-image,debootstrap}.sh tools/provision/k8s-ldflags.sh \
  tools/k8s-node/go.sum \
  tools/etcd/go.sum | sha256sum | cut -c1-12)
if [[ $("$docker" image inspect -f '{{index .Config.Labels "molstream.inputs"}}' "$image" \
        2>/dev/null) == "$stamp" ]]; then
  log "$image is up to date"
  echo "$image"
  exit 0
fi

export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOFLAGS=-modcacherw GOTOOLCHAIN=local
kind_dir=$(cd /tmp && go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $kind_dir ]] || { log "sigs.k8s.io/kind@$KIND_VERSION not in the module cache"; exit 1; }

"$docker" image rm -f "$base" >/dev/null 2>&1 || true
bash tools/provision/e2e/node-base.sh "$base" "$kind_dir"
rootfs_tar=$(ls -t "$CACHE"/e2e/bookworm-*.tar | head -1)
images=$CACHE/e2e/images-$KUBE_VERSION.tar
bash tools/provision/e2e/images.sh "$images" "$rootfs_tar"

log "assembling $image"
# --init: containerd, started and stopped below, must be reaped (sleep would leave a zombie).
id=$("$docker" run -d --init --entrypoint=sleep --security-opt seccomp=unconfined "$base" infinity)
trap '"$docker" rm -f "$id" >/dev/null 2>&1 || true' EXIT
for bin in kubeadm kubelet; do
  "$docker" cp "$CACHE/e2e/bin/$bin" "$id:/usr/bin/$bin"
done
"$docker" cp "$CACHE/bin/kubectl" "$id:/usr/bin/kubectl"
"$docker" exec "$id" chmod 0755 /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl
"$docker" exec -i "$id" sh -c 'mkdir -p /kind/manifests && cat > /kind/version' <<<"$KUBE_VERSION"
"$docker" exec -i "$id" sh -c 'cat > /kind/manifests/default-cni.yaml' <<'YAML'
# The offline node's pod network is the static CNI config in /etc/cni/net.d (one node). What kind
# applies here is the NetworkPolicy engine: kube-router's firewall alone (iptables + ipset), as
# k3s embeds it; its router and service proxy stay off.
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kube-router
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kube-router
rules:
  - apiGroups: [""]
    resources: [namespaces, pods, services, nodes, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kube-router
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kube-router
subjects:
  - kind: ServiceAccount
    name: kube-router
    namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-router
  namespace: kube-system
  labels:
    k8s-app: kube-router
spec:
  selector:
    matchLabels:
      k8s-app: kube-router
  template:
    metadata:
      labels:
        k8s-app: kube-router
    spec:
      serviceAccountName: kube-router
      priorityClassName: system-node-critical
      hostNetwork: true
      tolerations:
        - operator: Exists
      containers:
        - name: kube-router
          image: molstream-e2e/kube-router:v2.1.0
          imagePullPolicy: Never
          command: [/usr/local/bin/kube-router]
          args: [--run-router=false, --run-firewall=true, --run-service-proxy=false,
                 --service-cluster-ip-range=10.96.0.0/16, --v=1]
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
          securityContext:
            privileged: true
          readinessProbe:
            httpGet:
              path: /healthz
              port: 20244
            periodSeconds: 3
          volumeMounts:
            - name: lib-modules
              mountPath: /lib/modules
              readOnly: true
            - name: xtables-lock
              mountPath: /run/xtables.lock
      volumes:
        - name: lib-modules
          hostPath:
            path: /lib/modules
        - name: xtables-lock
          hostPath:
            path: /run/xtables.lock
            type: FileOrCreate
YAML
python3 - "$kind_dir/pkg/build/nodeimage/const_storage.go" <<'PY' |
import sys
go = open(sys.argv[1]).read()
images = {"storageProvisionerImage": "molstream-e2e/local-path-provisioner:v0.0.30",
          "storageHelperImage": "molstream-e2e/local-path-helper:bookworm"}
# The constant is raw strings joined by `+ name +`: alternate parts of a split on backticks.
parts = go.split("const defaultStorageManifest = `", 1)[1].split("`")
manifest = parts[0]
for joint, text in zip(parts[1::2], parts[2::2]):
    name = joint.strip()
    if not (name.startswith("+") and name.endswith("+")):
        break
    manifest += images[name.strip("+ ")] + text
assert "kindest" not in manifest and "local-path-config" in manifest
print(manifest)
PY
  "$docker" exec -i "$id" sh -c 'cat > /kind/manifests/default-storage.yaml'
"$docker" exec -i "$id" sh -c 'mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-molstream-ptp.conflist' <<'JSON'
{
  "cniVersion": "0.4.0",
  "name": "kindnet",
  "plugins": [
    {"type": "ptp", "ipMasq": true, "mtu": 1500,
     "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam-state",
              "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": "10.244.0.0/24"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
"$docker" exec "$id" sh -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
for _ in $(seq 1 100); do
  "$docker" exec "$id" test -S /run/containerd/containerd.sock && break
  sleep 0.2
done
"$docker" exec -i "$id" ctr -n k8s.io images import --all-platforms --no-unpack --digests - \
  <"$images" >/dev/null
for name in $("$docker" exec "$id" ctr -n k8s.io images ls -q | grep -v '^sha256:'); do
  "$docker" exec "$id" ctr -n k8s.io images label "$name" io.cri-containerd.pinned=pinned >/dev/null
done
"$docker" exec "$id" pkill containerd
"$docker" exec "$id" sh -c 'while pgrep -x containerd >/dev/null; do sleep 0.1; done; rm -f /tmp/containerd.log'
"$docker" commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change "LABEL molstream.inputs=$stamp" "$id" "$image" >/dev/null
log "$image built"
echo "$image"
