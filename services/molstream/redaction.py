"""One way to hide what a URL carries as a secret, for the fetcher, the worker and the operator.

`redact_url` hides the password of the user information (the user name is kept: it helps
debugging and is no secret) and the value of every query parameter that carries a token or a
signature: presigned S3 and GCS URLs, Azure SAS, `token=`, `api_key=`, ... (SECRET_PARAMS, and
any parameter whose name ends in one of SECRET_SUFFIXES, a PHP-style ``[]`` after it ignored).
Their values become ``REDACTED``; the rest of the URL is kept as written, so that a person still
sees which file it was. A fragment is dropped.

`redact_text` does the same to every URL inside free text (an error message, a log line), a
fragment written as a query (``#access_token=...&...``, OAuth's implicit flow) included, and
hides ``password=...``-like assignments outside URLs too (``SECRET_TOKEN=...``,
``Authorization: Bearer ...``), leaving alone the common words that follow such names in
error messages (``authorization: failed``, ``token: unexpected status``).

Whatever writes a URL (Job args and env, IngestRequest status, Events, logs, Kafka messages'
source identity) writes it through one of these.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "SECRET_PARAMS", "redact_query", "redact_text", "redact_url"]

REDACTED = "REDACTED"

#: Query parameters whose value is a credential (compared case-insensitively).
SECRET_PARAMS = frozenset({
    # AWS SigV4 presigned URLs (and SigV2's Signature, AWSAccessKeyId)
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature",
    "awsaccesskeyid",
    # Google Cloud Storage signed URLs
    "x-goog-signature", "x-goog-credential", "googleaccessid",
    # Azure shared access signatures: the signature and what it signs
    "sig", "sv", "se", "sp", "sr", "skoid", "sktid", "skt", "ske", "sks", "skv",
    # the usual names
    "token", "access_token", "refresh_token", "id_token", "auth", "key", "apikey", "api_key",
    "api-key", "password", "passwd", "pwd", "secret", "client_secret", "session",
    "sessionid", "credential", "credentials", "code",
})
#: ... and any parameter named like these at its end (``x_auth_token``, ``my-secret``).
SECRET_SUFFIXES = ("token", "secret", "signature", "password", "apikey", "api_key", "api-key",
                   "key", "pass", "passphrase", "auth", "jwt", "hmac", "ticket", "authorization",
                   "credential", "credentials")

_URL_IN_TEXT = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s@]*)@")
# A name ending in one of these words (SECRET_TOKEN, db.password, x-api-key), then = or :, then
# the value: quoted, an HTTP auth scheme and its credentials, or up to the next space.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b([\w.-]*(?:password|passwd|pwd|secret|token|authorization|passphrase"
    r"|(?:api|access|secret|private)[_-]?key))(\s*[=:]\s*)"
    r"(\"[^\"]*\"|'[^']*'|(?:bearer|basic|digest|negotiate|token)\s+\S+|\S+)")
# Words that follow such a name in error messages and are no secret ("may require
# authorization: authorization failed", "failed to fetch anonymous token: unexpected status").
_NOT_SECRETS = frozenset("""
    a an the is was are be been not no none null nil empty true false yes ok unset missing
    absent required requires needed invalid expired revoked wrong bad incorrect unknown
    unexpected failed failure fails denied refused rejected forbidden unauthorized unauthenticated
    error errors server message status authorization authentication insufficient_scope
    insufficient scope access given found present set supplied provided
    credentials credential secret secrets password passwords token tokens key keys must
""".split())


def _secret_param(name: str) -> bool:
    name = name.strip().lower()
    while name.endswith("[]"):  # token[]=..., PHP's and Rails' arrays
        name = name[:-2].rstrip()
    return name in SECRET_PARAMS or name.endswith(SECRET_SUFFIXES)


def redact_query(query: str) -> str:
    """A query string with the value of every secret parameter replaced by REDACTED (the
    rest kept byte for byte, separators and encoding included)."""
    if not query:
        return query
    out = []
    for item in re.split(r"([&;])", query):
        if item in ("&", ";"):
            out.append(item)
            continue
        name, sep, value = item.partition("=")
        if sep and value and _secret_param(_unquote(name)):
            out.append(f"{name}={REDACTED}")
        else:
            out.append(item)
    return "".join(out)


def _unquote(text: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(text)


def redact_url(url: str) -> str:
    """The URL without its password and without the values of secret query parameters.

    A password pasted into a URL without percent-encoding (`/`, `?`, `#` or `@` in it) ends the
    URL's authority early, so that no password is found where it should be: then everything
    between `//` and the last `@` is hidden, whatever it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text_plain(url)
    if "@" not in parts.netloc:
        scheme, sep, rest = url.partition("://")
        userinfo = rest.rpartition("@")[0]
        if sep and ":" in userinfo:
            return f"{scheme}://***@{_redact_rest(rest.rpartition('@')[2])}"
        if sep:
            return f"{scheme}://{_redact_rest(rest)}"
        return url
    host = parts.netloc.rpartition("@")[2]  # as written: parsing a bad port must not fail here
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, redact_query(parts.query), ""))


def _redact_rest(rest: str) -> str:
    """``host/path?query#fragment`` with the query's secrets hidden (fragment dropped)."""
    head, sep, query = rest.partition("?")
    if not sep:
        return rest.split("#", 1)[0]
    return f"{head}?{redact_query(query.split('#', 1)[0])}"


def _redact_query_of(url: str) -> str:
    url, hash_, fragment = url.partition("#")
    head, sep, query = url.partition("?")
    return f"{head}{sep}{redact_query(query)}{hash_}{_redact_fragment(fragment)}"


def _redact_fragment(fragment: str) -> str:
    """A fragment written as a query (``access_token=...&state=...``) redacted as one."""
    return redact_query(fragment) if "=" in fragment else fragment


def redact_text_plain(text: str) -> str:
    """User information and ``password=...``-like assignments hidden (no URL parsing)."""
    text = _USERINFO.sub(r"\1***@", text)
    return _SECRET_ASSIGNMENT.sub(_hide_assignment, text)


def _hide_assignment(m: re.Match[str]) -> str:
    value = m.group(3)
    if value.strip(".,;:!?()[]").lower() in _NOT_SECRETS:
        return m.group(0)
    return f"{m.group(1)}{m.group(2)}***"


def redact_text(text: str) -> str:
    """Every URL in free text without its user information (user name too: ``***@``) and
    with its secret query parameters REDACTED; ``password=xyz`` outside URLs hidden."""
    text = _URL_IN_TEXT.sub(lambda m: _redact_query_of(m.group(0)), text)
    text = _USERINFO.sub(r"\1***@", text)
    # Assignments outside URLs (a URL's own query is done: its values are REDACTED already)
    pieces, last = [], 0
    for m in _URL_IN_TEXT.finditer(text):
        pieces.append(redact_text_plain(text[last:m.start()]))
        pieces.append(m.group(0))
        last = m.end()
    pieces.append(redact_text_plain(text[last:]))
    return "".join(pieces)
