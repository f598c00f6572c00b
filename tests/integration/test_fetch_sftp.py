"""sftp:// sources against a real SSH server on loopback (paramiko's own, molstream_dev.sftp):
password and key logins, host keys checked against known_hosts lines (never trusted on first
use), clear errors that never show a secret, resume after a cut connection, and the real ChEMBL
rows through the whole pipeline."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from expected import actual_tables, expected_tables
from molstream import known_hosts as kh
from molstream.addresses import AddressPolicy
from molstream.db import make_engine
from molstream.fetch import Credentials, FetchError, Limits, credentials_from_env, download
from molstream.fetcher import IngestFailed
from molstream_dev.sftp import new_key

pytestmark = pytest.mark.sftp

PASSWORD = "s3cret-sftp"
#: The test server listens on 127.0.0.1 (refused by default).
LOOPBACK = AddressPolicy.parse(allowed_networks="127.0.0.0/8,::1/128")
REAL_FILE = Path(os.environ.get("MOLSTREAM_TEST_CHEMBL_REAL",
                                Path(__file__).parents[1] / "data" / "chembl-real")
                 ) / "activities.csv.gz"


def _limits(known_hosts: str = "", **kw) -> Limits:
    return Limits(addresses=LOOPBACK, max_bytes=10**9, timeout_s=60,
                  retries=kw.pop("retries", 3), backoff_s=0.1, known_hosts=known_hosts, **kw)


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    (root / "data.bin").write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    return root


@pytest.fixture
def client_key():
    return new_key()  # (private key text, public key line)


def test_password_login(source, sftp_server, tmp_path):
    sftp = sftp_server(source, password=PASSWORD)
    out = download(sftp.url("data.bin"), tmp_path / "out",
                   credentials=Credentials("molstream", PASSWORD),
                   limits=_limits(sftp.known_hosts))
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    assert sftp.logins == ["password"]


def test_key_login_with_and_without_a_passphrase(source, sftp_server, tmp_path, client_key):
    private, public = client_key
    key = Ed25519PrivateKey.generate()
    locked = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                               serialization.BestAvailableEncryption(b"open sesame")).decode()
    locked_public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                  serialization.PublicFormat.OpenSSH).decode()
    sftp = sftp_server(source, password=None, authorized_keys=[public, locked_public])
    limits = _limits(sftp.known_hosts)
    out = download(sftp.url("data.bin"), tmp_path / "a",
                   credentials=Credentials("molstream", private_key=private), limits=limits)
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    out = download(sftp.url("data.bin"), tmp_path / "b", limits=limits,
                   credentials=Credentials("molstream", private_key=locked,
                                           passphrase="open sesame"))
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    assert sftp.logins == ["publickey", "publickey"]
    with pytest.raises(FetchError, match="the private key is encrypted: give its passphrase"):
        download(sftp.url("data.bin"), tmp_path / "c", limits=limits,
                 credentials=Credentials("molstream", private_key=locked))
    with pytest.raises(FetchError, match="cannot be read: .* or a wrong passphrase") as e:
        download(sftp.url("data.bin"), tmp_path / "d", limits=limits,
                 credentials=Credentials("molstream", private_key=locked, passphrase="nope"))
    assert "nope" not in str(e.value)


def test_the_key_and_passphrase_come_from_files_that_may_be_absent(tmp_path, client_key):
    """As the operator mounts a Secret's optional keys: a file that is not there is no key."""
    (tmp_path / "ssh-privatekey").write_text(client_key[0])
    env = {"MOLSTREAM_SOURCE_USERNAME": "molstream",
           "MOLSTREAM_SOURCE_SSH_KEY_FILE": str(tmp_path / "ssh-privatekey"),
           "MOLSTREAM_SOURCE_SSH_PASSPHRASE_FILE": str(tmp_path / "passphrase")}
    creds = credentials_from_env(env)
    assert (creds.username, creds.private_key, creds.passphrase) == (
        "molstream", client_key[0], None)
    assert "PRIVATE" not in repr(creds) and "private_key=***" in repr(creds)
    (tmp_path / "ssh-privatekey").unlink()
    assert credentials_from_env(env).private_key is None


def test_a_wrong_password_is_refused_without_showing_it(source, sftp_server, tmp_path, caplog,
                                                       client_key):
    sftp = sftp_server(source, password=PASSWORD)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FetchError, match="login refused for user 'molstream' with the "
                                         "password") as e:
        download(sftp.url("data.bin"), tmp_path / "out",
                 credentials=Credentials("molstream", "not-the-password"),
                 limits=_limits(sftp.known_hosts))
    assert "not-the-password" not in str(e.value) + caplog.text
    with pytest.raises(FetchError, match="login refused .* with the private key .*the server "
                                         "allows only password"):
        download(sftp.url("data.bin"), tmp_path / "out",
                 credentials=Credentials("molstream", private_key=client_key[0]),
                 limits=_limits(sftp.known_hosts))
    assert sftp.logins == []


def test_an_unknown_host_is_refused_never_trusted(source, sftp_server, tmp_path):
    sftp = sftp_server(source)
    creds = Credentials("molstream", PASSWORD)
    other = f"[127.0.0.1]:{sftp.port + 1} {sftp.host_key}"  # the key, for another server
    with pytest.raises(FetchError, match=r"host key unknown: no known_hosts entry names "
                                         rf"\[127.0.0.1\]:{sftp.port} \(the server offered an "
                                         r"ssh-ed25519 key SHA256:"):
        download(sftp.url("data.bin"), tmp_path / "out", credentials=creds,
                 limits=_limits(other))
    with pytest.raises(FetchError, match="no known hosts given"):
        download(sftp.url("data.bin"), tmp_path / "out", credentials=creds, limits=_limits())
    assert sftp.logins == [] and not (tmp_path / "out").exists()


def test_a_wrong_host_key_is_refused(source, sftp_server, tmp_path):
    sftp = sftp_server(source)
    impostor = f"[127.0.0.1]:{sftp.port} {new_key()[1]}"
    with pytest.raises(FetchError, match="host key mismatch: the server offered an ssh-ed25519 "
                                         "key SHA256:.*, known_hosts has an ssh-ed25519 key "
                                         "SHA256:.*; refused"):
        download(sftp.url("data.bin"), tmp_path / "out",
                 credentials=Credentials("molstream", PASSWORD), limits=_limits(impostor))
    assert sftp.logins == []


def test_the_administrators_known_hosts_win_for_the_hosts_they_name(source, sftp_server,
                                                                  tmp_path):
    """A request cannot vouch for a key the operator's administrator pinned otherwise; for a
    host the administrator does not name, the request's lines are used."""
    sftp = sftp_server(source)
    creds = Credentials("molstream", PASSWORD)
    impostor = f"[127.0.0.1]:{sftp.port} {new_key()[1]}"
    with pytest.raises(FetchError, match="host key mismatch"):
        download(sftp.url("data.bin"), tmp_path / "a", credentials=creds,
                 limits=_limits(sftp.known_hosts, pinned_known_hosts=impostor))
    out = download(sftp.url("data.bin"), tmp_path / "b", credentials=creds,
                   limits=_limits(impostor, pinned_known_hosts=sftp.known_hosts))
    assert out.stat().st_size == 2**21
    elsewhere = f"other.example.org {new_key()[1]}"
    out = download(sftp.url("data.bin"), tmp_path / "c", credentials=creds,
                   limits=_limits(sftp.known_hosts, pinned_known_hosts=elsewhere))
    assert out.stat().st_size == 2**21


def test_hashed_known_hosts_entries(source, sftp_server, tmp_path):
    import paramiko

    sftp = sftp_server(source)
    name = kh.host_key_name("127.0.0.1", sftp.port)
    hashed = f"{paramiko.HostKeys.hash_host(name)} {sftp.host_key}"
    assert kh.names_host(hashed, "127.0.0.1", sftp.port)
    assert not kh.names_host(hashed, "127.0.0.1", sftp.port + 1)
    out = download(sftp.url("data.bin"), tmp_path / "out",
                   credentials=Credentials("molstream", PASSWORD), limits=_limits(hashed))
    assert out.stat().st_size == 2**21


def test_a_broken_known_hosts_line_is_named(source, sftp_server, tmp_path):
    sftp = sftp_server(source)
    for line, message in (
            (f"[127.0.0.1]:{sftp.port} ssh-ed25519", "entry 1: expected 'host key-type"),
            (f"@cert-authority *.example.org {sftp.host_key}", "markers such as "
                                                               "@cert-authority"),
            (f"[127.0.0.1]:{sftp.port} ssh-dss AAAA", "key type 'ssh-dss' is not one of"),
            (f"[127.0.0.1]:{sftp.port} ssh-ed25519 not!base64", "the key is not base64"),
            (f"[127.0.0.1]:{sftp.port} ssh-rsa {sftp.host_key.split()[1]}",
             "not an ssh-rsa key")):
        with pytest.raises(FetchError, match=message):
            download(sftp.url("data.bin"), tmp_path / "out",
                     credentials=Credentials("molstream", PASSWORD),
                     limits=_limits(f"# a comment\n\n{line}"))


def test_a_missing_file_and_a_directory_are_named(source, sftp_server, tmp_path):
    sftp = sftp_server(source)
    (source / "dir").mkdir()
    limits = _limits(sftp.known_hosts)
    creds = Credentials("molstream", PASSWORD)
    with pytest.raises(FetchError, match=r"nope.csv: no such file"):
        download(sftp.url("nope.csv"), tmp_path / "a", credentials=creds, limits=limits)
    with pytest.raises(FetchError, match="a directory, not a file"):
        download(sftp.url("dir/x").rsplit("/", 1)[0], tmp_path / "b", credentials=creds,
                 limits=limits)
    with pytest.raises(FetchError, match="sftp needs a user name"):
        download(sftp.url("data.bin"), tmp_path / "c", credentials=Credentials(None, PASSWORD),
                 limits=limits)


def test_the_url_user_and_a_home_relative_path(source, sftp_server, tmp_path):
    sftp = sftp_server(source)
    out = download(sftp.url("~/data.bin", user=True), tmp_path / "out",
                   credentials=Credentials(None, PASSWORD), limits=_limits(sftp.known_hosts))
    assert out.stat().st_size == 2**21


def test_sftp_resumes_after_a_cut_connection(source, sftp_server, tmp_path):
    sftp = sftp_server(source, cut_after_bytes=300_000)
    out = download(sftp.url("data.bin"), tmp_path / "out",
                   credentials=Credentials("molstream", PASSWORD),
                   limits=_limits(sftp.known_hosts))
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    # Read on from where the cut left the file. (Not how many times the file was opened: that
    # depends on how much of the pipelined reads a loaded machine had taken before the cut.)
    assert sftp.cuts == 1 and sftp.reads[0] == 0, sftp.reads
    assert 0 < sftp.reads[-1] <= 300_000, sftp.reads


def test_sftp_starts_over_when_the_file_changed_between_attempts(source, sftp_server,
                                                                  tmp_path):
    sftp = sftp_server(source, cut_after_bytes=300_000)
    with pytest.raises(FetchError, match="giving up after 1 attempt"):
        download(sftp.url("data.bin"), tmp_path / "out",
                 credentials=Credentials("molstream", PASSWORD),
                 limits=_limits(sftp.known_hosts, retries=0))
    assert 0 < (tmp_path / "out").stat().st_size <= 300_000
    new = bytes(reversed(range(256))) * 9000  # other bytes, another size
    (source / "data.bin").write_bytes(new)
    out = download(sftp.url("data.bin"), tmp_path / "out",
                   credentials=Credentials("molstream", PASSWORD),
                   limits=_limits(sftp.known_hosts))
    assert out.read_bytes() == new
    assert sftp.reads[-1] == 0


def test_sftp_size_cap_and_allow_list(source, sftp_server, tmp_path):
    sftp = sftp_server(source)
    creds = Credentials("molstream", PASSWORD)
    with pytest.raises(FetchError, match="over the download limit of 1000 bytes"):
        download(sftp.url("data.bin"), tmp_path / "a", credentials=creds,
                 limits=Limits(addresses=LOOPBACK, max_bytes=1000, timeout_s=60,
                               known_hosts=sftp.known_hosts))
    with pytest.raises(FetchError, match="host '127.0.0.1' is not on the allow-list"):
        download(sftp.url("data.bin"), tmp_path / "b", credentials=creds,
                 limits=_limits(sftp.known_hosts, allowed_hosts=("*.example.org",)))
    assert sftp.logins == ["password"]  # the allow-list refused before any connection


@pytest.mark.kafka
@pytest.mark.redis
def test_the_real_chembl_rows_over_sftp(make_pipeline, sftp_server, tmp_path, client_key):
    src = tmp_path / "srv"
    src.mkdir()
    (src / "activities.csv.gz").write_bytes(REAL_FILE.read_bytes())
    sftp = sftp_server(src, password=None, authorized_keys=[client_key[1]],
                       cut_after_bytes=200_000)
    p = make_pipeline(batch_size=5000, source_known_hosts=sftp.known_hosts)
    with pytest.raises(IngestFailed, match="host key unknown"):
        make_pipeline(source_known_hosts=f"[127.0.0.1]:{sftp.port + 1} {sftp.host_key}").fetch(
            sftp.url("activities.csv.gz"), "sftp-unknown-host",
            credentials=Credentials("molstream", private_key=client_key[0]))
    report = p.ingest(sftp.url("activities.csv.gz"), "sftp-real",
                      credentials=Credentials("molstream", private_key=client_key[0]))
    assert (report["rows_written"], report["rows_rejected"]) == (44_077, 0)
    assert sftp.cuts == 1 and len(sftp.reads) == 2  # resumed once, mid-file
    engine = make_engine(p.settings.database_url)
    try:
        assert actual_tables(engine) == expected_tables(REAL_FILE)
    finally:
        engine.dispose()
