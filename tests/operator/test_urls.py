"""Source URL checks and credential redaction (unit, no services)."""

from __future__ import annotations

import pytest
from molstream_operator.urls import InvalidSpecError, check_source_url, host_allowed, redact


@pytest.mark.parametrize(
    "url",
    [
        "ftp://molstream-ftp:2121/activities.csv.gz",
        "ftps://ftp.example.org/pub/a.csv",
        "http://10.0.0.5:8080/x.csv",
        "https://data.example.org/chembl/activities.csv.gz?version=34",
    ],
)
def test_accepts_the_four_schemes(url: str) -> None:
    assert check_source_url(url) == url


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("file:///etc/passwd", "file:// URLs are refused"),
        ("FILE:///data/a.csv", "file:// URLs are refused"),
        ("s3://bucket/a.csv", "scheme 's3' is not allowed"),
        ("gopher://host/a", "scheme 'gopher' is not allowed"),
        ("ftp:///a.csv", "has no host"),
        ("http://host:99999/a", "invalid port"),
        ("http://host/a b.csv", "spaces or control characters"),
        ("http://host/a\nb", "spaces or control characters"),
        ("", "is required"),
    ],
)
def test_refuses(url: str, needle: str) -> None:
    with pytest.raises(InvalidSpecError, match="spec.url") as info:
        check_source_url(url)
    assert needle in str(info.value)
    assert info.value.field == "spec.url"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://molstream:hunter2@molstream-ftp:2121/a.csv",
        "https://token-only-HUNTER2@example.org/a.csv",
        "ftp://:hunter2@host/a.csv",
    ],
)
def test_refuses_embedded_credentials_without_repeating_them(url: str) -> None:
    with pytest.raises(InvalidSpecError, match="must not embed credentials") as info:
        check_source_url(url)
    assert "hunter2" not in str(info.value).lower()


def test_non_string_url_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match="is required"):
        check_source_url(None)


def test_allow_list() -> None:
    allowed = ("molstream-ftp", "*.example.org")
    assert check_source_url("ftp://MOLSTREAM-FTP:2121/a.csv", allowed_hosts=allowed)
    assert check_source_url("https://data.example.org/a.csv", allowed_hosts=allowed)
    for url in ("https://example.org/a.csv", "https://evil.org/a.csv", "http://example.org.evil/x"):
        with pytest.raises(InvalidSpecError, match="not on the operator's allow-list"):
            check_source_url(url, allowed_hosts=allowed)


def test_empty_allow_list_allows_any_host() -> None:
    assert host_allowed("anything.example", ())
    assert not host_allowed("other", ("", "one"))


def test_redact() -> None:
    text = "cannot fetch ftp://molstream:s3cr3t@ftp.example.org/a.csv: 530 password=s3cr3t"
    redacted = redact(text)
    assert "s3cr3t" not in redacted
    assert "ftp://***@ftp.example.org/a.csv" in redacted
    assert "password=***" in redacted
    assert redact("nothing to hide here") == "nothing to hide here"
