"""The fetcher's address policy (molstream.addresses) and URL redaction (molstream.redaction)."""

from __future__ import annotations

import pytest
from molstream.addresses import AddressPolicy, AddressRefused, classify, parse_networks
from molstream.config import Settings
from molstream.fetch import Credentials, FetchError, Limits
from molstream.fetch.common import check_credentials
from molstream.redaction import redact_text, redact_url


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "a loopback address"),
    ("127.9.9.9", "a loopback address"),
    ("::1", "a loopback address"),
    ("169.254.169.254", "a link-local address (cloud metadata)"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("fd00:ec2::254", "a private (unique local) address (cloud metadata)"),
    ("10.96.0.1", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fc00::1", "a private (unique local) address"),
    ("100.64.0.1", "a carrier-grade NAT (shared) address"),
    ("100.127.255.254", "a carrier-grade NAT (shared) address"),
    ("0.0.0.0", "an unspecified ('this network') address"),
    ("::", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("255.255.255.255", "a broadcast address"),
    ("240.0.0.1", "a reserved address"),
    ("192.0.2.1", "a reserved (documentation) address"),
    ("2001:db8::1", "a reserved (documentation) address"),
    ("::ffff:127.0.0.1", "an IPv4-mapped address of 127.0.0.1, a loopback address"),
    ("::ffff:169.254.169.254",
     "an IPv4-mapped address of 169.254.169.254, a link-local address (cloud metadata)"),
    ("::ffff:10.0.0.1", "an IPv4-mapped address of 10.0.0.1, a private address"),
    ("64:ff9b::a9fe:a9fe",
     "an IPv6 address of 169.254.169.254, a link-local address (cloud metadata)"),
    ("2002:7f00:1::1", "an IPv6 address of 127.0.0.1, a loopback address"),
    ("::127.0.0.1", "an IPv6 address of 127.0.0.1, a loopback address"),
    # public addresses of cloud platforms, and the local-use NAT64 prefix (RFC 8215)
    ("168.63.129.16", "a cloud platform address (Azure WireServer)"),
    ("::ffff:168.63.129.16",
     "an IPv4-mapped address of 168.63.129.16, a cloud platform address (Azure WireServer)"),
    ("64:ff9b::a83f:8110",
     "an IPv6 address of 168.63.129.16, a cloud platform address (Azure WireServer)"),
    ("64:ff9b:1::a9fe:a9fe",
     "an IPv6 address of 169.254.169.254, a link-local address (cloud metadata)"),
    ("64:ff9b:1::10.96.0.1", "an IPv6 address of 10.96.0.1, a private address"),
    ("64:ff9b:1::a83f:8110",
     "an IPv6 address of 168.63.129.16, a cloud platform address (Azure WireServer)"),
    # 169.254.169.254 as a /48 and a /64 prefix of RFC 6052 carry it: not the /96 form, refused
    ("64:ff9b:1:a9fe:a9:fe00::",
     "a local-use NAT64 address (64:ff9b:1::/48) not of the form 64:ff9b:1::a.b.c.d"),
    ("64:ff9b:1:0:a9:fea9:fe00:0",
     "a local-use NAT64 address (64:ff9b:1::/48) not of the form 64:ff9b:1::a.b.c.d"),
])
def test_non_public_addresses_are_named_by_class(address, kind):
    assert classify(address) == kind


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "193.62.193.83",  # (EBI)
    "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "64:ff9b:1::808:808",
    "168.63.129.17"])
def test_public_addresses_pass(address):
    assert classify(address) is None
    assert AddressPolicy().refusal("example.org", address) is None


def test_cloud_platform_addresses_are_refused_naming_them():
    why = AddressPolicy().refusal("wireserver.example", "168.63.129.16")
    assert why == ("host 'wireserver.example' resolves to 168.63.129.16, a cloud platform "
                   "address (Azure WireServer); refused: set MOLSTREAM_ALLOWED_NETWORKS or "
                   "MOLSTREAM_INTERNAL_HOSTS to allow it")
    why = AddressPolicy().refusal("nat64.example", "64:ff9b:1::a9fe:a9fe")
    assert why is not None and "169.254.169.254, a link-local address (cloud metadata)" in why
    # allowed or denied by their IPv4 form, as the well-known NAT64 prefix is
    allowed = AddressPolicy.parse(allowed_networks="10.0.0.0/8")
    assert allowed.refusal("x", "64:ff9b:1::10.1.2.3") is None
    denied = AddressPolicy.parse(denied_networks="8.8.8.0/24")
    assert "denied network" in denied.refusal("x", "64:ff9b:1::8.8.8.8")


def test_the_default_refuses_with_the_host_the_address_and_the_way_out():
    why = AddressPolicy().refusal("metadata.google.internal", "169.254.169.254")
    assert why == ("host 'metadata.google.internal' resolves to 169.254.169.254, a link-local "
                   "address (cloud metadata); refused: set MOLSTREAM_ALLOWED_NETWORKS or "
                   "MOLSTREAM_INTERNAL_HOSTS to allow it")


def test_allowed_networks_cover_their_ipv4_mapped_forms():
    policy = AddressPolicy.parse(allowed_networks="127.0.0.0/8,::1/128")
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert policy.refusal("x", address) is None
    for address in ("169.254.169.254", "10.0.0.1", "::ffff:10.0.0.1", "fe80::1"):
        assert policy.refusal("x", address) is not None


def test_internal_hosts_may_resolve_inside_but_denied_networks_always_win():
    policy = AddressPolicy.parse(internal_hosts="molstream-ftp,*.mirror.svc",
                                 allowed_networks="10.0.0.0/8",
                                 denied_networks="10.96.0.0/12,203.0.113.0/24")
    assert policy.refusal("molstream-ftp", "10.244.1.7") is None
    assert policy.refusal("chembl.mirror.svc", "192.168.0.5") is None
    assert policy.refusal("mirror.svc", "192.168.0.5") is not None  # *.x is not x itself
    assert policy.refusal("evil.example", "10.244.1.7") is None  # allowed network
    assert policy.refusal("evil.example", "192.168.0.5") is not None
    for host in ("molstream-ftp", "evil.example"):  # denied wins over both
        why = policy.refusal(host, "10.96.0.1")
        assert why and "in a denied network (MOLSTREAM_DENIED_NETWORKS)" in why
    # a public address can be denied too (a cluster whose Service range is public)
    assert "denied network" in policy.refusal("api.example", "203.0.113.9")


def test_resolve_checks_every_address_and_refuses_a_name_for_any_bad_one():
    with pytest.raises(AddressRefused, match="host 'localhost' resolves to 127.0.0.1, a loopback"):
        AddressPolicy().resolve("localhost", 80)
    with pytest.raises(AddressRefused, match="resolves to 169.254.169.254"):
        AddressPolicy().resolve("169.254.169.254", 80)
    # integer and short IPv4 spellings resolve to what they mean, and are checked as such
    with pytest.raises(AddressRefused, match="resolves to 127.0.0.1"):
        AddressPolicy().resolve("2130706433", 80)
    with pytest.raises(AddressRefused, match="resolves to 127.0.0.1"):
        AddressPolicy().resolve("127.1", 80)
    allowed = AddressPolicy.parse(allowed_networks="127.0.0.0/8,::1/128")
    assert all(a in ("127.0.0.1", "::1") for _, a in allowed.resolve("localhost", 80))


def test_bad_networks_are_named():
    with pytest.raises(ValueError, match="MOLSTREAM_ALLOWED_NETWORKS: '10.0.0.0/33' is not"):
        AddressPolicy.parse(allowed_networks="10.0.0.0/33")
    assert parse_networks("10.1.2.3, ::1", name="X")[0].prefixlen == 32


def test_settings_read_the_policy_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOLSTREAM_ALLOWED_NETWORKS", "127.0.0.0/8, ::1/128")
    monkeypatch.setenv("MOLSTREAM_INTERNAL_HOSTS", "molstream-ftp")
    monkeypatch.setenv("MOLSTREAM_DENIED_NETWORKS", "10.96.0.0/12")
    monkeypatch.setenv("MOLSTREAM_ALLOW_INSECURE_CREDENTIALS", "true")
    s = Settings.from_env()
    assert s.allowed_networks == ("127.0.0.0/8", "::1/128")
    assert s.internal_hosts == ("molstream-ftp",) and s.denied_networks == ("10.96.0.0/12",)
    assert s.allow_insecure_credentials is True
    monkeypatch.setenv("MOLSTREAM_DENIED_NETWORKS", "cluster")
    with pytest.raises(ValueError, match="MOLSTREAM_DENIED_NETWORKS: 'cluster'"):
        Settings.from_env()
    for name in ("ALLOWED_NETWORKS", "INTERNAL_HOSTS", "DENIED_NETWORKS",
                 "ALLOW_INSECURE_CREDENTIALS"):
        monkeypatch.delenv(f"MOLSTREAM_{name}")
    strict = Settings.from_env()
    assert strict.allowed_networks == () and not strict.allow_insecure_credentials


def test_credentials_never_go_over_plain_ftp_or_http_unless_allowed():
    creds = Credentials("u", "pw")
    strict = Limits(max_bytes=1, timeout_s=1)
    for url in ("ftp://h/a.csv", "http://h/a.csv"):
        with pytest.raises(FetchError, match="credentials are never sent over plain"):
            check_credentials(url, creds, strict)
        check_credentials(url, Credentials(), strict)  # anonymous: nothing to leak
        check_credentials(url, creds, Limits(max_bytes=1, timeout_s=1, insecure_credentials=True))
    for url in ("ftps://h/a.csv", "https://h/a.csv", "sftp://h/a.csv"):
        check_credentials(url, creds, strict)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://bucket.s3.amazonaws.com/a.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=AKIA%2F20240101%2Fus-east-1&X-Amz-Date=20240101T000000Z"
     "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQo"
     "&X-Amz-Signature=0123abcd",
     "https://bucket.s3.amazonaws.com/a.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
     "&X-Amz-Credential=REDACTED&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
     "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED"),
    ("https://storage.googleapis.com/b/a.csv?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Credential=sa%40p.iam&X-Goog-Signature=beef",
     "https://storage.googleapis.com/b/a.csv?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Credential=REDACTED&X-Goog-Signature=REDACTED"),
    ("https://acct.blob.core.windows.net/c/a.csv?sv=2022-11-02&ss=b&srt=o&sp=r"
     "&se=2030-01-01T00:00:00Z&st=2024-01-01&spr=https&sig=abc%2Bdef%3D",
     "https://acct.blob.core.windows.net/c/a.csv?sv=REDACTED&ss=b&srt=o&sp=REDACTED"
     "&se=REDACTED&st=2024-01-01&spr=https&sig=REDACTED"),
    ("https://h/a.csv?token=t&access_token=a&key=k&apikey=x&api_key=y&password=p&page=2",
     "https://h/a.csv?token=REDACTED&access_token=REDACTED&key=REDACTED&apikey=REDACTED"
     "&api_key=REDACTED&password=REDACTED&page=2"),
    ("ftp://user:pw@h/a.csv", "ftp://user:***@h/a.csv"),
    ("https://h/a.csv", "https://h/a.csv"),
    ("https://h/a.csv?X-Auth-Token=abc#frag", "https://h/a.csv?X-Auth-Token=REDACTED"),
])
def test_url_secrets_are_redacted(url, shown):
    assert redact_url(url) == shown


def test_urls_in_free_text_are_redacted():
    text = ("fetching https://u:pw@h/a.csv?sig=s3cr3t&x=1 failed: HTTP 403; "
            "password=hunter2 token: abc")
    out = redact_text(text)
    assert out == ("fetching https://***@h/a.csv?sig=REDACTED&x=1 failed: HTTP 403; "
                   "password=*** token: ***")
    for secret in ("pw@", "s3cr3t", "hunter2", "abc"):
        assert secret not in out


@pytest.mark.parametrize("name", [
    "access_key", "aws_secret_access_key", "private_key", "pass", "passphrase", "jwt", "hmac",
    "ticket", "authorization", "x-auth", "credential", "client_credentials", "token[]",
    "token%5B%5D", "api_key[]", "SECRET_TOKEN"])
def test_more_secret_parameters_are_redacted(name):
    url = f"https://h/a.csv?page=2&{name}=S3KR1T&x=1"
    for out in (redact_url(url), redact_text(f"fetching {url} failed")):
        assert "S3KR1T" not in out and f"{name}=REDACTED" in out and "page=2&" in out


def test_bearer_values_and_fragments_written_as_a_query_are_redacted():
    url = "https://h/a.csv?authorization=Bearer%20eyJhbGciOi.e30.c2ln&page=1"
    assert redact_url(url) == "https://h/a.csv?authorization=REDACTED&page=1"
    # a fragment is dropped from a URL, and redacted as a query within text
    assert redact_url("https://h/f?a=1#access_token=SEKRET8") == "https://h/f?a=1"
    assert redact_text("at https://h/f?a=1#access_token=SEKRET8 now") == (
        "at https://h/f?a=1#access_token=REDACTED now")
    assert redact_text("https://h/f#access_token=SEKRET8&state=s1&token_type=bearer") == (
        "https://h/f#access_token=REDACTED&state=s1&token_type=bearer")
    assert redact_text("https://h/docs#section-2") == "https://h/docs#section-2"


def test_assignments_in_text_by_the_end_of_their_names():
    text = ("SECRET_TOKEN=hunter2-abcdef db.password: \"two words\" "
            "Authorization: Bearer abc.def.ghi X-Api-Key: k123 AWS_SECRET_ACCESS_KEY=wJalr "
            "GITHUB_TOKEN='ghp_1' ssh_passphrase=opensesame")
    out = redact_text(text)
    assert out == ("SECRET_TOKEN=*** db.password: *** Authorization: *** X-Api-Key: *** "
                   "AWS_SECRET_ACCESS_KEY=*** GITHUB_TOKEN=*** ssh_passphrase=***")


@pytest.mark.parametrize("message", [
    # containerd through the kubelet (ErrImagePull), a private registry without pull secret
    'Failed to pull image "registry.example.org/molstream:1.0": failed to pull and unpack '
    'image "registry.example.org/molstream:1.0": failed to resolve reference '
    '"registry.example.org/molstream:1.0": pull access denied, repository does not exist or '
    "may require authorization: server message: insufficient_scope: authorization failed",
    'Failed to pull image "ghcr.io/acme/molstream:1.0": rpc error: code = Unknown desc = '
    'failed to pull and unpack image "ghcr.io/acme/molstream:1.0": failed to resolve '
    'reference "ghcr.io/acme/molstream:1.0": failed to authorize: failed to fetch anonymous '
    "token: unexpected status from GET request to https://ghcr.io/token?scope=repository%3A"
    "acme%2Fmolstream%3Apull&service=ghcr.io: 401 Unauthorized",
    "pull access denied, repository does not exist or may require authorization: "
    "authorization failed: no basic auth credentials",
    "password required; token: missing; secret: denied",
])
def test_kubelet_messages_come_out_as_they_went_in(message):
    assert redact_text(message) == message
