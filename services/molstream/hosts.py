"""Source host allow-lists (MOLSTREAM_ALLOWED_HOSTS): the operator checks an IngestRequest's URL
against one, and the fetcher every URL it is sent to, redirects included."""

from __future__ import annotations

from collections.abc import Collection


def parse_hosts(text: str | None) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(h.strip() for h in (text or "").split(",") if h.strip())


def host_allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    """Whether ``host`` matches the allow-list; an empty list allows any host.

    An entry is an exact host name or address (case-insensitive), or ``*.example.org`` which
    matches any name under example.org (not example.org itself).
    """
    if not allowed_hosts:
        return True
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        entry = entry.strip().lower().rstrip(".")
        if not entry:
            continue
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False
