# Sourced by kube.sh and e2e/images.sh: the -ldflags that stamp Kubernetes binaries with
# KUBE_VERSION (without them they say v0.0.0-master, and helm's and kubeadm's version checks fail).
k8s_ldflags() {
    local minor=${KUBE_VERSION#v1.}
    minor=${minor%%.*}
    local flags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    echo "$flags"
}
