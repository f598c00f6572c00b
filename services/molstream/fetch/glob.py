"""URL globs: `ftp://host/releases/chembl_*/activities.csv.gz` names every file that matches.

`*`, `?` and `[...]` written as such in the URL's path are glob characters (as the shell's,
within one path segment); percent-encoded (`%2A`, `%3F`, `%5B`) they are literal. Any path
segment may hold them; each globbed directory is listed (MLSD, or NLST on servers without it),
at most MAX_MATCHES entries in all. FTP and FTPS only (LISTERS: a scheme whose module can list
a directory adds itself there); an http(s) URL with `*` or `[` in its path is refused, since
HTTP has no directory listing to match against (and `?` there starts the query).

The matches are ordered by their modification time (MDTM) when the server gives one for every
match, by name otherwise (natural order: digits compared as numbers, so chembl_9 < chembl_10),
and the fetcher takes the newest, unless it, or one newer than it, was loaded already
(`choose`): an older release is never loaded after a newer one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from .common import FetchError, redact
from .ftp import FtpSession
from .identity import Identity, unchanged_by_validators

__all__ = ["LISTERS", "MAX_MATCHES", "Match", "choose", "expand", "has_glob", "refuse_glob"]

MAX_MATCHES = 1000
_GLOB = re.compile(r"[*?\[]")


class Lister(Protocol):
    """A logged-in session that answers what a directory holds and what a file is."""

    def entries(self, path: str) -> list[tuple[str, bool | None]]: ...
    def stat(self, path: str) -> tuple[str | None, int | None] | None: ...
    def close(self) -> None: ...


#: scheme -> factory(url, credentials, limits, deadline) of a Lister.
LISTERS: dict[str, Callable[..., Lister]] = {"ftp": FtpSession, "ftps": FtpSession}


@dataclass(frozen=True)
class Match:
    url: str  # the file's own URL (user information kept as given: the download needs it)
    identity: Identity  # MDTM and size from the listing server, no sha256 yet


def _raw_path(url: str) -> str:
    """The path as written, `?` included (for FTP there is no query), without a fragment."""
    rest = url.split("://", 1)[1] if "://" in url else url
    slash = rest.find("/")
    return rest[slash:].split("#", 1)[0] if slash >= 0 else ""


def has_glob(url: str) -> bool:
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        return bool(re.search(r"[*\[]", urlsplit(url).path))
    if scheme == "file":
        return False
    return bool(_GLOB.search(_raw_path(url)))


def refuse_glob(url: str) -> None:
    """An http(s) URL with glob characters: refused with the reason and the way out."""
    scheme = urlsplit(url).scheme
    if has_glob(url) and scheme not in LISTERS:
        raise FetchError(f"{redact(url)}: globs (*, ?, [...]) in the URL are not supported for "
                         f"{scheme}:// sources (only {', '.join(sorted(LISTERS))}); name one "
                         "file, or percent-encode a literal * as %2A and [ as %5B")


def _pattern(segment: str) -> str:
    """A raw URL path segment as an fnmatch pattern: percent-escapes decoded to literals."""
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        if c == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", segment[i + 1:i + 3]):
            end = i + 3
            while re.fullmatch(r"%[0-9A-Fa-f]{2}", segment[end:end + 3]):
                end += 3  # a multi-byte UTF-8 character, decoded whole
            out.append(re.sub(r"([*?\[])", r"[\1]", unquote(segment[i:end])))
            i = end
        elif c == "[":
            close = segment.find("]", i + 2 if segment[i + 1:i + 2] in ("!", "]") else i + 1)
            if close < 0:
                out.append("[[]")
                i += 1
            else:
                out.append(unquote(segment[i:close + 1]))
                i = close + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand(url: str, lister: Lister) -> list[Match]:
    """Every file the glob URL matches, with what the server says of it."""
    parts = urlsplit(url)
    head = f"{parts.scheme}://{parts.netloc}"
    segments = _raw_path(url).split("/")[1:]
    if not segments or not segments[-1]:
        raise FetchError(f"URL {redact(url)!r} names no file")
    first = next(i for i, s in enumerate(segments) if _GLOB.search(s))
    base = "/" + "/".join(unquote(s) for s in segments[:first])
    found: list[tuple[str, tuple[str, ...]]] = [(base, ())]
    for i, segment in enumerate(segments[first:], start=first):
        last = i == len(segments) - 1
        if not _GLOB.search(segment):
            found = [(_join(path, unquote(segment)), release) for path, release in found]
            continue
        pattern, matched = _pattern(segment), []
        for path, release in found:
            for name, is_dir in lister.entries(path):
                if name in (".", "..") or not fnmatchcase(name, pattern):
                    continue
                if is_dir is None or is_dir is not last:  # directories, then files
                    matched.append((_join(path, name), (*release, name)))
                if len(matched) > MAX_MATCHES:
                    raise FetchError(f"{redact(url)} matches more than {MAX_MATCHES} entries: "
                                     "narrow the glob")
        found = matched
    matches = []
    for path, release in found:
        stat = lister.stat(path)
        if stat is None:
            continue  # a directory after all, or gone since the listing
        mdtm, size = stat
        file_url = head + quote(path, safe="/")
        matches.append(Match(file_url, Identity.of(file_url, last_modified=mdtm, size=size,
                                                   release="/".join(release))))
    return matches


def _join(path: str, name: str) -> str:
    return path.rstrip("/") + "/" + name


def _natural(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part
                 for part in re.split(r"(\d+)", text))


def _mdtm(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value else None
    except InvalidOperation:
        return None


def order(matches: Sequence[Match]) -> tuple[list[Match], str]:
    """Oldest first: by MDTM when every match has one (ties by name), else by name."""
    if matches and all(_mdtm(m.identity.last_modified) is not None for m in matches):
        return sorted(matches, key=lambda m: (_mdtm(m.identity.last_modified),
                                              _natural(m.url))), "modification time"
    return sorted(matches, key=lambda m: _natural(m.url)), "name"


def choose(url: str, matches: Sequence[Match],
           loaded: Sequence[Identity]) -> tuple[Match | None, str]:
    """The newest match, if neither it nor one newer was loaded; else None and why."""
    if not matches:
        raise FetchError(f"{redact(url)}: no file matches")
    ordered, by = order(matches)
    newest_loaded = max((i for i, m in enumerate(ordered)
                         if unchanged_by_validators(m.identity, loaded)), default=-1)
    if newest_loaded == len(ordered) - 1:
        m = ordered[newest_loaded]
        return None, (f"{len(ordered)} file(s) match, the newest by {by} was loaded already: "
                      f"{redact(m.url)} ({m.identity.describe()})")
    return ordered[-1], f"the newest of {len(ordered)} match(es) by {by}"
