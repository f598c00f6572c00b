"""Downloads against the real FTP/FTPS/HTTP(S) test servers: resume, credentials, errors."""

from __future__ import annotations

import pytest
from molstream.addresses import AddressPolicy
from molstream.fetch import Credentials, FetchError, Limits, download, redact

pytestmark = pytest.mark.ftp

#: The test servers listen on 127.0.0.1 (refused by default) and serve plain ftp:// and http://.
LOOPBACK = AddressPolicy.parse(allowed_networks="127.0.0.0/8,::1/128")


def _local(**kw) -> Limits:
    return Limits(addresses=LOOPBACK, insecure_credentials=True, **kw)


LIMITS = _local(max_bytes=10**9, timeout_s=60, retries=3, backoff_s=0.1)


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
    trusted = _local(max_bytes=10**9, timeout_s=60, retries=0, ca_file=tls_ca_file)
    assert download(ftps.url("data.bin"), tmp_path / "a", limits=trusted).stat().st_size == 2**21
    assert download(https.url("data.bin"), tmp_path / "b", limits=trusted).stat().st_size == 2**21
    untrusted = _local(max_bytes=10**9, timeout_s=60, retries=0)
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
    small = _local(max_bytes=1000, timeout_s=60, retries=0)
    with pytest.raises(FetchError, match="over the download limit of 1000 bytes"):
        download(ftp.url("data.bin"), tmp_path / "a", limits=small)


def test_redact_hides_passwords():
    assert redact("ftp://user:secret@host:21/a.csv") == "ftp://user:***@host:21/a.csv"
    assert redact("https://host/a.csv") == "https://host/a.csv"
    assert "secret" not in repr(Credentials("u", "secret"))


# -- redirects: each hop checked, credentials only for their own origin ------------------------


def _authorizations(server) -> list[str]:
    return [r["Authorization"] for r in server.requests if "Authorization" in r]


def test_a_redirect_to_another_origin_is_followed_without_the_password(source, http_server,
                                                                       tmp_path):
    other = http_server(source)  # another port: another origin
    first = http_server(source, user="u", password="pw",
                        redirects={"/data.bin": other.url("data.bin")})
    out = download(first.url("data.bin"), tmp_path / "out", credentials=Credentials("u", "pw"),
                   limits=LIMITS)
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    assert _authorizations(first) and not _authorizations(other)
    assert len(other.requests) == 1


def test_a_redirect_within_the_origin_keeps_the_password(source, http_server, tmp_path):
    http = http_server(source, user="u", password="pw", redirects={"/old.bin": "/data.bin"})
    out = download(http.url("old.bin"), tmp_path / "out", credentials=Credentials("u", "pw"),
                   limits=LIMITS)
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    assert [r["path"] for r in http.requests] == ["/old.bin", "/data.bin"]


def test_a_redirect_from_https_to_http_is_refused(source, http_server, tmp_path, tls_ca_file):
    plain = http_server(source)
    https = http_server(source, tls=True, redirects={"/data.bin": plain.url("data.bin")})
    limits = _local(max_bytes=10**9, timeout_s=60, retries=0, ca_file=tls_ca_file)
    with pytest.raises(FetchError, match="redirected from https to http .* a downgrade, refused"):
        download(https.url("data.bin"), tmp_path / "out", credentials=Credentials("u", "pw"),
                 limits=limits)
    assert plain.requests == []


def test_a_redirect_loop_ends_with_a_clear_error(source, http_server, tmp_path):
    http = http_server(source, redirects={"/a.bin": "/b.bin", "/b.bin": "/a.bin"})
    with pytest.raises(FetchError, match="more than 5 redirects"):
        download(http.url("a.bin"), tmp_path / "out", limits=LIMITS)
    assert len(http.requests) == 6


def test_a_redirect_to_a_host_off_the_allow_list_is_refused(source, http_server, tmp_path):
    other = http_server(source)
    off_list = other.url("data.bin").replace("127.0.0.1", "localhost")
    http = http_server(source, user="u", password="pw", redirects={"/data.bin": off_list})
    limits = _local(max_bytes=10**9, timeout_s=60, retries=0, allowed_hosts=("127.0.0.1",))
    with pytest.raises(FetchError, match="host 'localhost' is not on the allow-list"):
        download(http.url("data.bin"), tmp_path / "out", credentials=Credentials("u", "pw"),
                 limits=limits)
    assert other.requests == []
    with pytest.raises(FetchError, match="host '127.0.0.1' is not on the allow-list"):
        download(http.url("data.bin"), tmp_path / "out2",
                 limits=_local(max_bytes=10**9, timeout_s=60, allowed_hosts=("*.example.org",)))


# -- resume only what the server proves the same ---------------------------------------------


def _change(path) -> bytes:
    new = bytes(reversed(range(256))) * 9000  # other bytes, another size
    path.write_bytes(new)
    return new


def test_http_starts_over_when_the_resource_changed_between_attempts(source, http_server,
                                                                    tmp_path):
    http = http_server(source, cut_after_bytes=300_000)
    once = _local(max_bytes=10**9, timeout_s=60, retries=0)
    with pytest.raises(FetchError, match="giving up after 1 attempt"):
        download(http.url("data.bin"), tmp_path / "out", limits=once)
    assert (tmp_path / "out").stat().st_size == 300_000  # kept, to resume
    new = _change(source / "data.bin")
    out = download(http.url("data.bin"), tmp_path / "out", limits=LIMITS)
    assert out.read_bytes() == new
    last = http.requests[-1]
    assert last["Range"] == "bytes=300000-" and last["If-Range"]  # asked to resume, if same


def test_http_resumes_only_with_a_validator(source, http_server, tmp_path):
    """A partial file whose validator is gone (an older molstream left it, or it was copied):
    nothing proves it the start of the server's file, so the download starts over."""
    http = http_server(source)
    (tmp_path / "out").write_bytes(b"x" * 1000)
    out = download(http.url("data.bin"), tmp_path / "out", limits=LIMITS)
    assert out.read_bytes() == (source / "data.bin").read_bytes()
    assert "Range" not in http.requests[-1]


def test_ftp_starts_over_when_the_file_changed_between_attempts(source, ftp_server, tmp_path):
    ftp = ftp_server(source, cut_after_bytes=300_000)
    once = _local(max_bytes=10**9, timeout_s=60, retries=0)
    with pytest.raises(FetchError, match="giving up after 1 attempt"):
        download(ftp.url("data.bin"), tmp_path / "out", limits=once)
    assert 0 < (tmp_path / "out").stat().st_size < 2**21
    new = _change(source / "data.bin")
    out = download(ftp.url("data.bin"), tmp_path / "out", limits=LIMITS)
    assert out.read_bytes() == new
