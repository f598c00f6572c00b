"""sftp:// IngestRequests: spec.sftp.knownHosts checked by the API server and the operator, the
operator's own known hosts (MOLSTREAM_KNOWN_HOSTS), and the fetcher Job they make: the
private key and passphrase mounted as files, the password optional, the known hosts in the
environment, read back by the fetcher's own command line."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from molstream_dev.sftp import new_key
from molstream_operator.config import FetcherTemplate, OperatorConfig
from molstream_operator.manifests import build_cronjob, build_job
from molstream_operator.models import IngestRequestRef, IngestRequestSpec
from molstream_operator.urls import InvalidSpecError
from operator_harness import Namespace, ingestrequest, secret

REF = IngestRequestRef(namespace="chem", name="chembl", uid="uid-1", generation=1)
CONFIG = OperatorConfig(kafka_bootstrap="kafka:9092", topic_prefix="molstream",
                        fetcher=FetcherTemplate.from_mapping({"image": "molstream:dev"}))
HOST_KEY = new_key()[1]  # "ssh-ed25519 AAAA…"
URL = "sftp://sftp.example.org:2222/pub/activities.csv.gz"
LINE = f"[sftp.example.org]:2222 {HOST_KEY}"
SSH_DIR = "/var/run/molstream/source-ssh"


def _spec(**spec: Any) -> IngestRequestSpec:
    return IngestRequestSpec.parse({"url": URL, "credentialsSecret": {"name": "sftp-creds"},
                                    **spec})


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_job_mounts_the_key_and_passes_the_known_hosts() -> None:
    spec = _spec(sftp={"knownHosts": [LINE]})
    assert spec.known_hosts == LINE
    for pod in (_pod(build_job(REF, spec, CONFIG, run=1)),
                build_cronjob(REF, _spec(sftp={"knownHosts": [LINE]}, schedule="@daily"),
                              CONFIG)["spec"]["jobTemplate"]["spec"]["template"]["spec"]):
        (container,) = pod["containers"]
        env = _env(container)
        assert env["MOLSTREAM_SOURCE_KNOWN_HOSTS"] == LINE
        assert "MOLSTREAM_KNOWN_HOSTS" not in env  # the operator has none of its own
        assert env["MOLSTREAM_SOURCE_USERNAME"]["secretKeyRef"] == {
            "name": "sftp-creds", "key": "username", "optional": False}
        assert env["MOLSTREAM_SOURCE_PASSWORD"]["secretKeyRef"]["optional"] is True
        assert env["MOLSTREAM_SOURCE_SSH_KEY_FILE"] == f"{SSH_DIR}/ssh-privatekey"
        assert env["MOLSTREAM_SOURCE_SSH_PASSPHRASE_FILE"] == f"{SSH_DIR}/passphrase"
        # The key never travels in the environment: a read-only file of the Secret's.
        assert not any("ssh-privatekey" == (e.get("valueFrom") or {}).get(
            "secretKeyRef", {}).get("key") for e in container["env"])
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == SSH_DIR)
        assert mount["readOnly"] is True
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["secret"] == {
            "secretName": "sftp-creds", "optional": True, "defaultMode": 0o440,
            "items": [{"key": "ssh-privatekey", "path": "ssh-privatekey"},
                      {"key": "passphrase", "path": "passphrase"}]}
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])  # kept


def test_an_ftp_job_is_as_before() -> None:
    spec = IngestRequestSpec.parse({"url": "ftp://molstream-ftp:2121/a.csv",
                                    "credentialsSecret": {"name": "ftp-creds"}})
    pod = _pod(build_job(REF, spec, CONFIG, run=1))
    (container,) = pod["containers"]
    env = _env(container)
    assert env["MOLSTREAM_SOURCE_PASSWORD"]["secretKeyRef"]["optional"] is False
    assert not {k for k in env if "SSH" in k or "KNOWN_HOSTS" in k}
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]


def test_the_operators_known_hosts_reach_the_job_and_cover_a_host() -> None:
    config = OperatorConfig.from_env({"MOLSTREAM_KNOWN_HOSTS": f"# pinned\n{LINE}\n"})
    assert config.known_hosts == LINE
    spec = IngestRequestSpec.parse({"url": URL, "credentialsSecret": {"name": "s"}},
                                   pinned_known_hosts=config.known_hosts)
    (container,) = _pod(build_job(REF, spec, config, run=1))["containers"]
    env = _env(container)
    assert env["MOLSTREAM_KNOWN_HOSTS"] == LINE and "MOLSTREAM_SOURCE_KNOWN_HOSTS" not in env
    # ... but only to sftp Jobs
    ftp = IngestRequestSpec.parse({"url": "ftp://h/a.csv"})
    (container,) = _pod(build_job(REF, ftp, config, run=1))["containers"]
    assert "MOLSTREAM_KNOWN_HOSTS" not in _env(container)
    with pytest.raises(ValueError, match="MOLSTREAM_KNOWN_HOSTS, entry 1: expected"):
        OperatorConfig.from_env({"MOLSTREAM_KNOWN_HOSTS": "sftp.example.org"})


def test_a_template_cannot_override_the_sftp_variables() -> None:
    template = FetcherTemplate.from_mapping({"env": [
        {"name": name, "value": "x"} for name in (
            "MOLSTREAM_SOURCE_KNOWN_HOSTS", "MOLSTREAM_SOURCE_KNOWN_HOSTS_FILE",
            "MOLSTREAM_KNOWN_HOSTS", "MOLSTREAM_SOURCE_SSH_KEY_FILE",
            "MOLSTREAM_SOURCE_SSH_PASSPHRASE_FILE")]})
    config = OperatorConfig(fetcher=template)
    (container,) = _pod(build_job(REF, _spec(sftp={"knownHosts": [LINE]}), config,
                                  run=1))["containers"]
    assert "x" not in [e.get("value") for e in container["env"]]


@pytest.mark.parametrize(("spec", "needle"), [
    ({}, "an sftp:// source needs its server's host key: no entry names "
         "[sftp.example.org]:2222"),
    ({"sftp": {"knownHosts": [f"sftp.example.org {HOST_KEY}"]}}, "no entry names"),  # port 22
    ({"sftp": {"knownHosts": ["[sftp.example.org]:2222 ssh-ed25519"]}}, "entry 1: expected"),
    ({"sftp": {"knownHosts": [f"@revoked * {HOST_KEY}"]}}, "markers such as @revoked"),
    ({"sftp": {"knownHosts": ["[sftp.example.org]:2222 ssh-dss AAAA"]}}, "key type 'ssh-dss'"),
    ({"sftp": {"knownHosts": [{"host": "x"}]}}, "must be a list of known_hosts lines"),
    ({"sftp": "yes"}, "must be an object"),
])
def test_the_operator_refuses_an_sftp_spec_naming_the_field(spec: dict, needle: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        _spec(**spec)
    assert info.value.field.startswith("spec.sftp") and needle in str(info.value), info.value


def test_spec_sftp_is_for_sftp_urls_only_and_hashed_entries_count() -> None:
    with pytest.raises(InvalidSpecError, match="spec.sftp: is for sftp:// URLs only"):
        IngestRequestSpec.parse({"url": "ftp://h/a.csv", "sftp": {"knownHosts": [LINE]}})
    import paramiko

    hashed = f"{paramiko.HostKeys.hash_host('[sftp.example.org]:2222')} {HOST_KEY}"
    assert _spec(sftp={"knownHosts": hashed}).known_hosts == hashed  # one text is fine too
    with pytest.raises(InvalidSpecError, match="globs"):
        IngestRequestSpec.parse({"url": "sftp://h/a*.csv", "sftp": {"knownHosts": [LINE]}})


def test_the_fetcher_reads_what_the_job_gives(monkeypatch, tmp_path) -> None:
    """The Job's variables and files, through the fetcher's real command line, up to the
    Settings and Credentials it runs with."""
    from molstream import cli, fetcher

    private = new_key()[0]
    (tmp_path / "ssh-privatekey").write_text(private)
    spec = _spec(sftp={"knownHosts": [LINE]})
    config = OperatorConfig(known_hosts=f"other.example.org {HOST_KEY}")
    (container,) = _pod(build_job(REF, spec, config, run=1))["containers"]
    env = {k: v for k, v in _env(container).items() if isinstance(v, str)}
    env["MOLSTREAM_SOURCE_SSH_KEY_FILE"] = str(tmp_path / "ssh-privatekey")
    env["MOLSTREAM_SOURCE_SSH_PASSPHRASE_FILE"] = str(tmp_path / "passphrase")  # absent
    env["MOLSTREAM_SOURCE_USERNAME"] = "molstream"
    seen = {}

    def run(url, *, settings, credentials, **_):
        seen.update(url=url, settings=settings, credentials=credentials)
        raise fetcher.IngestFailed("fetch", "stop here")

    monkeypatch.setattr(fetcher, "run", run)
    for name in list(__import__("os").environ):
        if name.startswith("MOLSTREAM_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(cli.main, container["args"], env=env)
    assert result.exit_code == 2, result.output
    assert seen["url"] == URL
    assert seen["settings"].source_known_hosts == LINE
    assert seen["settings"].known_hosts == f"other.example.org {HOST_KEY}"
    creds = seen["credentials"]
    assert (creds.username, creds.private_key, creds.passphrase) == ("molstream", private, None)


# -- against the real API server ----------------------------------------------------------


def _sftp_ir(name: str, **spec: Any) -> dict[str, Any]:
    return ingestrequest(name, **{"url": URL, "credentialsSecret": {"name": "sftp-creds"},
                                  **spec})


@pytest.mark.kube
@pytest.mark.parametrize(("spec", "needle"), [
    ({"url": "ftp://molstream-ftp:2121/a.csv", "sftp": {"knownHosts": [LINE]}},
     "spec.sftp is for sftp:// URLs only"),
    ({"url": "sftp://sftp.example.org/a*.csv"}, "globs (*, ?, [...]) are supported in ftp"),
    ({"sftp": {"knownHosts": [""]}}, "spec.sftp.knownHosts[0]"),
    ({"sftp": {"knownHosts": "one line"}}, "spec.sftp.knownHosts"),
])
def test_a_bad_sftp_spec_is_refused_by_the_api_server(ns: Namespace, kubectl: Any,
                                                      spec: dict[str, Any],
                                                      needle: str) -> None:
    manifest = _sftp_ir("bad-sftp", **spec)
    result = kubectl("apply", "-f", "-", namespace=ns.name, input=yaml.safe_dump(manifest),
                     check=False)
    assert result.returncode != 0
    assert needle in result.stderr, result.stderr
    assert ns.admin.get_ingestrequest(ns.name, "bad-sftp") is None


@pytest.mark.kube
def test_an_sftp_request_reaches_its_fetcher_job(ns: Namespace, start_operator: Any) -> None:
    op = start_operator()
    ns.context = op.tail
    key = {"apiVersion": "v1", "kind": "Secret", "metadata": {
               "name": "sftp-creds", "labels": {"molstream.io/source-credentials": "true"}},
           "type": "kubernetes.io/ssh-auth",
           "stringData": {"ssh-privatekey": new_key()[0], "username": "molstream"}}
    ns.apply([key, _sftp_ir("over-sftp", sftp={"knownHosts": [LINE]})])
    (job,) = ns.wait_jobs(1)
    pod = _pod(job)
    (container,) = pod["containers"]
    env = _env(container)
    assert env["MOLSTREAM_SOURCE_KNOWN_HOSTS"] == LINE
    assert env["MOLSTREAM_SOURCE_SSH_KEY_FILE"] == f"{SSH_DIR}/ssh-privatekey"
    assert next(v for v in pod["volumes"] if v["name"] == "source-ssh")["secret"][
        "secretName"] == "sftp-creds"
    assert ns.ir("over-sftp")["spec"]["sftp"] == {"knownHosts": [LINE]}


@pytest.mark.kube
def test_an_sftp_request_without_its_host_key_fails_naming_it(ns: Namespace,
                                                              start_operator: Any) -> None:
    op = start_operator()
    ns.context = op.tail
    ns.apply([secret("pw", name="sftp-creds"), _sftp_ir("no-host-key")])
    status = ns.wait_phase("no-host-key", "Failed")
    assert "an sftp:// source needs its server's host key" in status["message"]
    assert ns.condition("no-host-key", "Failed")["reason"] == "InvalidSpec"
    assert ns.jobs() == []
