"""What identifies one version of a source file, and whether it is one already loaded.

An `Identity` is what the server says of a file before it is downloaded (a strong HTTP ETag,
the HTTP Last-Modified date or the FTP modification time (MDTM), the size) and the sha256 of
the bytes once downloaded. The fetcher is given the identities of the files its IngestRequest
loaded before (`--loaded`, MOLSTREAM_SOURCE_LOADED: a JSON list, oldest first) and ends a run
as *unchanged*, publishing nothing, when:

* before the download, the server's validators equal those recorded for the same URL by the
  last successful run: a strong ETag equal, or (no ETag on either side) Last-Modified/MDTM and
  size both equal; or
* after the download, the sha256 of the bytes equals that of the last file loaded (whatever the
  server said: the same bytes are the same file).

Identities never hold credentials: their URL is the source's without its user information
and with its secret query parameters REDACTED (molstream.redaction), as the IngestRequest's
status records it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .common import Validator, redact, validator_value, without_userinfo

__all__ = ["Identity", "file_sha256", "parse_loaded", "unchanged_by_sha256",
           "unchanged_by_validators"]


@dataclass(frozen=True)
class Identity:
    url: str  # without user information, secret query parameters REDACTED
    etag: str | None = None  # strong ETags only: a weak one does not prove the bytes the same
    last_modified: str | None = None  # HTTP Last-Modified, or FTP MDTM (as the server gives it)
    size: int | None = None
    sha256: str | None = None
    release: str | None = None  # what a URL glob matched (e.g. "chembl_35"), if any

    @classmethod
    def of(cls, url: str, *, etag: str | None = None, last_modified: str | None = None,
           size: int | None = None, sha256: str | None = None,
           release: str | None = None) -> Identity:
        # (the server's words, kept only when they are a token or an HTTP date: they reach
        # the IngestRequest's status.runSource)
        strong = validator_value(etag) if etag and not etag.startswith("W/") else None
        return cls(redact(without_userinfo(url)) if "://" in url else url, strong,
                   validator_value(last_modified, date=True),
                   size, sha256, release)

    @classmethod
    def from_validator(cls, validator: Validator, *, size: int | None,
                       sha256: str | None = None, release: str | None = None) -> Identity:
        return cls.of(validator.url, etag=validator.etag,
                      last_modified=validator.last_modified or validator.mdtm,
                      size=size, sha256=sha256, release=release)

    @classmethod
    def from_dict(cls, data: Any) -> Identity | None:
        """An identity from JSON (the operator's camelCase or the fetcher's snake_case); None
        when it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return None
        get = lambda *keys: next((data[k] for k in keys if data.get(k) is not None), None)  # noqa: E731
        size = get("size")
        return cls(url=data["url"], etag=_str(get("etag")),
                   last_modified=_str(get("last_modified", "lastModified")),
                   size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                   sha256=_str(get("sha256")), release=_str(get("release")))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def event_fields(self) -> dict[str, Any]:
        """The fields of the fetcher's `identified` and `unchanged` events."""
        return {"source": redact(self.url), **{f.name: getattr(self, f.name)
                                               for f in fields(self) if f.name != "url"}}

    def with_sha256(self, digest: str) -> Identity:
        return replace(self, sha256=digest)

    def describe(self) -> str:
        parts = [f"ETag {self.etag}"] if self.etag else []
        if self.last_modified:
            parts.append(f"modified {self.last_modified}")
        if self.size is not None:
            parts.append(f"{self.size} bytes")
        if self.sha256:
            parts.append(f"sha256 {self.sha256[:12]}…")
        return ", ".join(parts) or "no validators"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_loaded(raw: str | None) -> tuple[Identity, ...]:
    """MOLSTREAM_SOURCE_LOADED: a JSON list of identities (or one object), oldest first."""
    if not raw or not raw.strip():
        return ()
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("the loaded sources (MOLSTREAM_SOURCE_LOADED, --loaded) are not "
                         "JSON") from None
    items = data if isinstance(data, list) else [data]
    return tuple(i for i in map(Identity.from_dict, items) if i is not None)


def last_for(url: str, loaded: Iterable[Identity]) -> Identity | None:
    """The most recent identity recorded for `url`."""
    found = None
    for identity in loaded:
        if identity.url == url:
            found = identity
    return found


def unchanged_by_validators(current: Identity | None, loaded: Sequence[Identity]) -> str | None:
    """What proves `current` the file the last successful run of its URL loaded, or None."""
    if current is None:
        return None
    last = last_for(current.url, loaded)
    if last is None:
        return None
    if current.etag and last.etag:
        return f"ETag {current.etag}" if current.etag == last.etag else None
    if (current.last_modified and current.size is not None and last.size is not None
            and current.last_modified == last.last_modified and current.size == last.size):
        return f"modified {current.last_modified} and {current.size} bytes"
    return None


def unchanged_by_sha256(current: Identity, loaded: Sequence[Identity]) -> str | None:
    """The downloaded bytes are those of the last file loaded (any URL)."""
    last = next((i for i in reversed(loaded) if i.sha256), None)
    if current.sha256 and last is not None and last.sha256 == current.sha256:
        where = "" if last.url == current.url else f" (loaded from {redact(last.url)})"
        return f"sha256 {current.sha256}{where}"
    return None


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in large blocks (right after its download: from the page cache)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
