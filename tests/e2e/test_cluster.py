"""The offline kind node makes a working cluster: what `make run` needs of one."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

KUBE_VERSION = "v1.32.13"  # tools/k8s-node/go.mod

# The only image with a shell the node holds before molstream's own is loaded: kube-proxy's
# (a Debian root filesystem). Never pulled (imagePullPolicy Never): nothing is reachable.
SHELL_IMAGE = f"registry.k8s.io/kube-proxy:{KUBE_VERSION}"

# A new cluster's service addresses answer once kube-proxy has written their rules: the pod
# waits for that (60 s at most) rather than the test for a length of time.
RESOLVE = ("for i in $(seq 60); do getent hosts kubernetes.default.svc.cluster.local && break;"
           " sleep 1; done; getent hosts kubernetes.default.svc.cluster.local")

PROBE = f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: probe-data}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 64Mi}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: probe}}
spec:
  restartPolicy: Never
  containers:
    - name: probe
      image: {SHELL_IMAGE}
      imagePullPolicy: Never
      command: [sh, -ec, "{RESOLVE}; echo kept > /data/f; cat /data/f"]
      volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: probe-data}}}}]
"""


def test_the_node_is_ready_with_every_control_plane_component(cluster):
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 1
    info = nodes[0]["status"]["nodeInfo"]
    assert info["kubeletVersion"] == KUBE_VERSION
    assert info["containerRuntimeVersion"].startswith("containerd://")
    cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=300s")
    cluster.kubectl("wait", "--for=condition=Ready", "pods", "--all", "-n", "kube-system",
                    "--timeout=300s")
    pods = json.loads(cluster.kubectl("get", "pods", "-n", "kube-system", "-o", "json").stdout)
    names = [p["metadata"]["name"] for p in pods["items"]]
    for component in ("etcd-", "kube-apiserver-", "kube-controller-manager-", "kube-scheduler-",
                      "kube-proxy-", "coredns-", "kube-router-"):
        assert any(n.startswith(component) for n in names), (component, names)


def test_a_pod_resolves_services_and_keeps_data_on_a_bound_claim(cluster):
    cluster.kubectl("apply", "-f", "-", stdin=PROBE)
    try:
        done = cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/probe",
                               "--timeout=300s", check=False)
        assert done.returncode == 0, (cluster.kubectl("describe", "pod", "probe").stdout,
                                      cluster.kubectl("logs", "probe", check=False).stdout)
        log = cluster.kubectl("logs", "probe").stdout
        assert "kubernetes.default.svc.cluster.local" in log and "kept" in log
        claim = json.loads(cluster.kubectl("get", "pvc", "probe-data", "-o", "json").stdout)
        assert claim["status"]["phase"] == "Bound"
        assert claim["spec"]["storageClassName"] == "standard"
    finally:
        cluster.kubectl("delete", "-f", "-", "--wait=false", stdin=PROBE, check=False)
