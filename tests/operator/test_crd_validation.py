"""The CRD's own rules, against the real test kube-apiserver: user information in spec.url is
refused before it reaches etcd (an `x-kubernetes-validations` CEL rule, with a message that
names the problem), and spec.allowInsecureCredentials is a boolean that defaults to false."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from operator_harness import Namespace, ingestrequest

pytestmark = pytest.mark.kube

MESSAGE = "must not hold a user name or password (user:password@host or user@host)"


def _apply(ns: Namespace, kubectl: Any, name: str, **spec: Any) -> Any:
    return kubectl("apply", "-f", "-", namespace=ns.name, check=False,
                   input=yaml.safe_dump(ingestrequest(name, **spec)))


@pytest.mark.parametrize("url", [
    "ftp://molstream:hunter2@molstream-ftp:2121/a.csv",
    "https://user@mirror.example.org/a.csv",
    "sftp://u:p%40ss@sftp.example.org/data/a.csv",
    "https://:token@mirror.example.org/a.csv",
])
def test_userinfo_in_the_url_never_reaches_etcd(ns: Namespace, kubectl: Any, url: str) -> None:
    result = _apply(ns, kubectl, "userinfo", url=url, credentialsSecret=None)
    assert result.returncode != 0
    assert "spec.url" in result.stderr and MESSAGE in result.stderr, result.stderr
    assert "molstream.io/source-credentials=true" in result.stderr
    assert ns.admin.get_ingestrequest(ns.name, "userinfo") is None


@pytest.mark.parametrize("url", [
    "https://mirror.example.org/a.csv?X-Amz-Signature=abc&mail=me@example.org",  # @ in query
    "ftp://molstream-ftp:2121/pub/user@host/activities.csv.gz",  # @ in the path
])
def test_an_at_sign_after_the_host_is_fine(ns: Namespace, kubectl: Any, url: str) -> None:
    result = _apply(ns, kubectl, "at-sign", url=url, credentialsSecret=None)
    assert result.returncode == 0, result.stderr
    assert ns.ir("at-sign")["spec"]["url"] == url


def test_allow_insecure_credentials_is_a_boolean_false_by_default(
    ns: Namespace, kubectl: Any
) -> None:
    assert _apply(ns, kubectl, "plain", allowInsecureCredentials=None).returncode == 0
    assert ns.ir("plain")["spec"]["allowInsecureCredentials"] is False
    refused = _apply(ns, kubectl, "word", allowInsecureCredentials="yes")
    assert refused.returncode != 0
    assert "spec.allowInsecureCredentials" in refused.stderr, refused.stderr
