"""Fixtures for every suite: real services started on 127.0.0.1 by the project's own test environment."""

pytest_plugins = [
    "molstream_dev.pytest_services",  # Kafka, Redis, FTP/FTPS, HTTP, PostgreSQL
    "molstream_dev.pytest_kube",  # kube-apiserver + etcd, helm, kubectl
]
