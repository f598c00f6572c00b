"""FTP and FTPS (explicit TLS) sources. A retry resumes with `REST` only when the server's size
and modification time (MDTM) are those the partial file was started from; otherwise the file
has changed on the server and the download starts over from byte zero."""

from __future__ import annotations

import ftplib
import ssl
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .common import (
    CHUNK,
    Budget,
    Credentials,
    FetchError,
    Limits,
    Progress,
    Transient,
    Validator,
    partial,
    reason,
    redact,
    socket_timeout,
    tls_context,
    without_userinfo,
)


def ftp_fetch(url: str, dest: Path, creds: Credentials, limits: Limits, deadline: float,
              progress: Progress | None) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 21
    path = unquote(parts.path)
    tls = parts.scheme == "ftps"
    ftp: ftplib.FTP = ftplib.FTP_TLS(context=tls_context(limits)) if tls else ftplib.FTP()
    try:
        try:
            ftp.connect(host, port, timeout=socket_timeout(limits, deadline))
        except (OSError, EOFError) as e:
            raise Transient(f"cannot connect to {host}:{port}: {reason(e)}") from None
        try:
            if tls:
                ftp.auth()
            ftp.login(creds.username or "anonymous", creds.password or "anonymous@")
            if tls:
                ftp.prot_p()
            ftp.voidcmd("TYPE I")
        except ftplib.error_perm as e:
            raise FetchError(f"{redact(url)}: login refused ({_reply(e)})") from None
        except ssl.SSLError as e:
            raise FetchError(f"{redact(url)}: TLS failed ({e.reason or e})") from None
        try:
            size = ftp.size(path)
        except ftplib.error_perm as e:
            raise FetchError(f"{redact(url)}: no such file ({_reply(e)})") from None
        current = Validator(without_userinfo(url), mdtm=_mdtm(ftp, path), size=size)
        have = partial(dest)
        if have and not _same_version(Validator.load(dest, current.url), current, have):
            dest.unlink()  # the server's file is not the one we hold the start of
            have = 0
        if size is not None and have == size:
            return
        budget = Budget(url, have, size, limits, deadline, progress)  # (checks the space first)
        current.save(dest)
        with open(dest, "ab") as out:
            def write(block: bytes) -> None:
                out.write(block)
                budget.add(len(block))
            try:
                ftp.retrbinary(f"RETR {path}", write, blocksize=CHUNK, rest=have or None)
            except ftplib.error_perm as e:
                raise FetchError(f"{redact(url)}: cannot read the file ({_reply(e)})") from None
        if size is not None and partial(dest) < size:
            raise Transient(f"connection closed at byte {partial(dest)} of {size}")
    except (OSError, EOFError, ftplib.error_temp, ftplib.error_reply) as e:
        raise Transient(reason(e)) from None
    finally:
        try:
            ftp.close()
        except OSError:
            pass


def _same_version(saved: Validator | None, current: Validator, have: int) -> bool:
    """Both the size and the modification time known, and equal to the partial file's."""
    return (saved is not None and current.mdtm is not None and current.size is not None
            and (saved.mdtm, saved.size) == (current.mdtm, current.size) and have <= current.size)


def _mdtm(ftp: ftplib.FTP, path: str) -> str | None:
    """The file's modification time as the server gives it (RFC 3659), None if it cannot."""
    try:
        reply = ftp.sendcmd(f"MDTM {path}")
    except ftplib.error_perm:
        return None
    code, _, stamp = reply.partition(" ")
    return stamp.strip() if code == "213" else None


def _reply(e: ftplib.Error) -> str:
    return str(e).strip()
