"""FTP and FTPS (explicit TLS) sources. A retry resumes with `REST` only when the server's size
and modification time (MDTM) are those the partial file was started from; otherwise the file
has changed on the server and the download starts over from byte zero.

The control connection goes to an address the policy allows (molstream.addresses), checked
and connected to as is; TLS (ftps) still verifies the certificate for the host name. Data
connections go to the same address: ftplib ignores the address a PASV reply names and uses the
control connection's peer (`trust_server_pasv_ipv4_address` stays False), and EPSV names a
port only. A server's reply is shown as its code and a fixed phrase for it (`describe`): the
text after the code is the server's own words (a file's first line, another service's
greeting), kept for the debug log only."""

from __future__ import annotations

import ftplib
import logging
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

log = logging.getLogger(__name__)


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
    except (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto) as e:
        raise Transient(_reply(e)) from None
    except (OSError, EOFError) as e:
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
    except ftplib.error_perm as e:
        raise FetchError(f"{redact(url)}: the server refused the connection "
                         f"({_reply(e)})") from None
    except ftplib.error_proto:
        raise FetchError(f"{redact(url)}: the server's greeting is not an FTP reply (not an "
                         "FTP server?)") from None
    except (ftplib.error_temp, ftplib.error_reply) as e:
        raise Transient(f"cannot connect to {host}:{port}: {_reply(e)}") from None
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
        raise FetchError(f"{redact(url)}: TLS failed ({e.reason or type(e).__name__})") from None


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


#: What a reply code means, in our words (RFC 959, RFC 2228, RFC 3659)...
_REPLIES = {
    "421": "service not available",
    "425": "cannot open the data connection",
    "426": "connection closed, transfer aborted",
    "430": "invalid user name or password",
    "450": "file unavailable (busy)",
    "451": "aborted (a local error of the server)",
    "452": "insufficient storage",
    "500": "command not understood",
    "501": "syntax error in the arguments",
    "502": "command not implemented",
    "503": "bad sequence of commands",
    "504": "command not implemented for that argument",
    "530": "not logged in",
    "532": "an account is needed",
    "534": "request denied for policy reasons",
    "550": "no such file or access refused",
    "551": "page type unknown",
    "552": "storage allocation exceeded",
    "553": "file name not allowed",
}
#: ... and, for the codes not above, what their class means.
_CLASSES = {"1": "an unexpected preliminary reply", "2": "an unexpected completion reply",
            "3": "an unexpected intermediate reply", "4": "a temporary failure",
            "5": "a permanent failure"}


def _reply(e: ftplib.Error) -> str:
    """The server's reply as its code and our phrase for it (``FTP 550: no such file or
    access refused``); its text, the server's words, goes to the debug log only."""
    text = str(e).strip()
    log.debug("FTP reply (%s): %s", type(e).__name__, text[:500])
    code = text[:3]
    if len(code) == 3 and code.isdigit() and code[0] in _CLASSES:
        return f"FTP {code}: {_REPLIES.get(code) or _CLASSES[code[0]]}"
    return "not an FTP reply"


def describe(e: BaseException) -> str:
    """Why an FTP session failed, in our words (ftplib's errors are the server's reply)."""
    if isinstance(e, ftplib.Error):
        return _reply(e)
    if isinstance(e, OSError | EOFError):
        return reason(e)
    if isinstance(e, Transient | FetchError):
        return str(e)  # ours
    return f"an unexpected error ({type(e).__name__})"
