"""Fixtures for every suite: real services on 127.0.0.1, started by the project's own scripts."""

pytest_plugins = [
    "molstream_dev.pytest_services",  # Kafka, Redis, FTP/FTPS, HTTP, PostgreSQL
    "molstream_dev.pytest_kube",  # kube-apiserver + etcd, helm, kubectl
]
