"""FTP and FTPS (explicit TLS) sources. A retry resumes with `REST` only when the server's size
and modification time (MDTM) are those the partial file was started from; otherwise the file
has changed on the server and the download starts over from byte zero.

The control connection goes to an address the policy allows (molstream.addresses), checked
and connected to as is; TLS (ftps) still verifies the certificate for the host name. Data
connections go to the same address: ftplib ignores the address a PASV reply names and uses the
control connection's peer (`trust_server_pasv_ipv4_address` stays False), and EPSV names a
port only. A server's reply is shown as its first line, cut short."""

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
    connect_checked,
    partial,
    reason,
    redact,
    socket_timeout,
    tls_context,
    without_userinfo,
)


def ftp_fetch(url: str, dest: Path, creds: Credentials, limits: Limits, deadline: float,
              progress: Progress | None) -> None:
    path = unquote(urlsplit(url).path)
    ftp = _client(url, limits)
    try:
        _login(ftp, url, creds, limits, deadline)
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


def _client(url: str, limits: Limits) -> ftplib.FTP:
    tls = urlsplit(url).scheme == "ftps"
    return ftplib.FTP_TLS(context=tls_context(limits)) if tls else ftplib.FTP()


def _login(ftp: ftplib.FTP, url: str, creds: Credentials, limits: Limits,
           deadline: float) -> None:
    """Connect, log in (TLS first for ftps), binary mode; Transient or FetchError as usual."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 21
    tls = isinstance(ftp, ftplib.FTP_TLS)
    timeout = socket_timeout(limits, deadline)
    try:
        sock = connect_checked(host or "", port, limits, timeout)
    except OSError as e:
        raise Transient(f"cannot connect to {host}:{port}: {reason(e)}") from None
    try:
        _attach(ftp, sock, host or "", port, timeout)
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


def _attach(ftp: ftplib.FTP, sock, host: str, port: int, timeout: float) -> None:
    """What ftplib.FTP.connect does, on a socket connected to a checked address: the host name
    is kept as ftp.host (TLS's server_hostname, for the control and the data connections)."""
    ftp.host, ftp.port, ftp.timeout = host, port, timeout
    ftp.trust_server_pasv_ipv4_address = False  # data: to the control connection's peer
    ftp.sock = sock
    ftp.af = sock.family
    ftp.file = sock.makefile("r", encoding=ftp.encoding)
    ftp.welcome = ftp.getresp()


class FtpSession:
    """One logged-in FTP(S) connection for the cheap questions asked before a download: a
    file's size and modification time, a directory's entries (molstream.fetch.glob)."""

    def __init__(self, url: str, creds: Credentials, limits: Limits, deadline: float) -> None:
        self.url = url
        self.ftp = _client(url, limits)
        try:
            _login(self.ftp, url, creds, limits, deadline)
        except BaseException:
            self.close()
            raise

    def stat(self, path: str) -> tuple[str | None, int | None] | None:
        """(MDTM, size) of a file, None when it is not one (a directory, or missing)."""
        try:
            size = self.ftp.size(path)
        except ftplib.error_perm:
            return None
        return _mdtm(self.ftp, path), size

    def entries(self, path: str) -> list[tuple[str, bool | None]]:
        """The names in a directory, each with whether it is a directory (None: unknown)."""
        try:
            try:
                return [(name, facts.get("type", "").lower() in ("dir", "cdir", "pdir")
                         if "type" in facts else None)
                        for name, facts in self.ftp.mlsd(path, facts=["type"])]
            except ftplib.error_perm as e:
                if not str(e).startswith(("500", "501", "502", "504")):
                    return []  # no such directory (550): nothing matches there
            try:  # a server without MLSD (RFC 3659)
                names = self.ftp.nlst(path)
            except ftplib.error_perm:
                return []
            return [(name.rstrip("/").rpartition("/")[2], None) for name in names]
        finally:
            self.ftp.voidcmd("TYPE I")  # listings switch to ASCII, where SIZE is refused

    def close(self) -> None:
        try:
            self.ftp.close()
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
    """The server's reply: its first line, at most 160 characters."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 160 else text[:160] + "…"
