"""Downloads against the real FTP/FTPS/HTTP(S) test servers: resume, credentials, errors."""

from __future__ import annotations

import pytest
from molstream.fetch import Credentials, FetchError, Limits, download, redact

pytestmark = pytest.mark.ftp

LIMITS = Limits(max_bytes=10**9, timeout_s=60, retries=3, backoff_s=0.1)


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    (root / "data.bin").write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    return root


def test_ftp_resumes_after_a_cut_connection(source, ftp_server, tmp_path):
    ftp = ftp_server(source, cut_after_bytes=300_000)
    out = download(ftp.url("data.bin"), tmp_path / "out", limits=LIMITS)
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    assert ftp.cuts == 1


def test_http_resumes_with_range_after_a_cut_connection(source, http_server, tmp_path):
    http = http_server(source, user="u", password="pw", cut_after_bytes=300_000)
    out = download(http.url("data.bin"), tmp_path / "out", credentials=Credentials("u", "pw"),
                   limits=LIMITS)
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    assert http.cuts == 1
    assert http.requests[-1]["Range"] == "bytes=300000-"


def test_tls_sources_verify_the_server(source, ftp_server, http_server, tmp_path, tls_ca_file):
    ftps = ftp_server(source, tls=True)
    https = http_server(source, tls=True)
    trusted = Limits(max_bytes=10**9, timeout_s=60, retries=0, ca_file=tls_ca_file)
    assert download(ftps.url("data.bin"), tmp_path / "a", limits=trusted).stat().st_size == 2**21
    assert download(https.url("data.bin"), tmp_path / "b", limits=trusted).stat().st_size == 2**21
    untrusted = Limits(max_bytes=10**9, timeout_s=60, retries=0)
    with pytest.raises(FetchError, match="TLS failed"):
        download(https.url("data.bin"), tmp_path / "c", limits=untrusted)


def test_http_errors_are_named(source, http_server, tmp_path):
    http = http_server(source, user="u", password="pw")
    with pytest.raises(FetchError, match="access refused .HTTP 401."):
        download(http.url("data.bin"), tmp_path / "a", credentials=Credentials("u", "bad"),
                 limits=LIMITS)
    with pytest.raises(FetchError, match="no such file .HTTP 404."):
        download(http.url("nope.bin"), tmp_path / "b", credentials=Credentials("u", "pw"),
                 limits=LIMITS)


def test_download_size_cap(source, ftp_server, tmp_path):
    ftp = ftp_server(source)
    small = Limits(max_bytes=1000, timeout_s=60, retries=0)
    with pytest.raises(FetchError, match="over the download limit of 1000 bytes"):
        download(ftp.url("data.bin"), tmp_path / "a", limits=small)


def test_redact_hides_passwords():
    assert redact("ftp://user:secret@host:21/a.csv") == "ftp://user:***@host:21/a.csv"
    assert redact("https://host/a.csv") == "https://host/a.csv"
    assert "secret" not in repr(Credentials("u", "secret"))
