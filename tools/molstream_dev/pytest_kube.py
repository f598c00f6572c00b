"""pytest plugin: kube-apiserver + etcd, helm and kubectl fixtures (filled in by the test environment)."""
