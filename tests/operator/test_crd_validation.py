"""The CRD's own rules, against the real test kube-apiserver: user information in spec.url is
refused before it reaches etcd (an `x-kubernetes-validations` CEL rule, with a message that
names the problem), spec.allowInsecureCredentials is a boolean that defaults to false, and
spec.credentialsSecret.name is a DNS subdomain exactly as written (the admission policy authorizes
that very string: a name the operator would have to trim or change never reaches etcd)."""

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


@pytest.mark.parametrize("name", [" creds ", "creds ", "Creds", "creds/../x", "-creds", "creds.",
                                  "a" * 254])
def test_a_secret_name_that_is_no_dns_subdomain_never_reaches_etcd(
    ns: Namespace, kubectl: Any, name: str
) -> None:
    result = _apply(ns, kubectl, "odd-secret", credentialsSecret={"name": name})
    assert result.returncode != 0
    assert "spec.credentialsSecret.name" in result.stderr, result.stderr
    assert ns.admin.get_ingestrequest(ns.name, "odd-secret") is None


def test_a_dns_subdomain_secret_name_is_stored_as_written(ns: Namespace, kubectl: Any) -> None:
    for name in ("creds", "source.creds-1", "a" * 253):
        result = _apply(ns, kubectl, "fine-secret", credentialsSecret={"name": name})
        assert result.returncode == 0, result.stderr
        assert ns.ir("fine-secret")["spec"]["credentialsSecret"]["name"] == name
