"""SFTP sources (SSH File Transfer Protocol), on paramiko.

The server's host key must be one the known_hosts lines give (`Limits.known_hosts`, and the
administrator's `Limits.pinned_known_hosts`, which win for the hosts they name): an unknown
host or a key other than the one given is refused, never added (paramiko's RejectPolicy), and
the message shows the key the server offered so that a person can check it out of band.

Authentication is by private key (`Credentials.private_key`, opened by its passphrase) and/or
password; a user name is required (the URL's or the credentials'). Nothing else is tried: no
SSH agent, no keys from ~/.ssh.

A retry resumes by reading from the partial file's end only when the server's size and
modification time are those the partial file was started from (as the FTP source does with
MDTM); otherwise the download starts over from byte zero.

The TCP connection goes to an address the policy allows (molstream.addresses), checked and
connected to as is; the host key is looked up for the host name the URL gives.

URL paths are absolute (`sftp://host/data/a.csv` is /data/a.csv); `sftp://host/~/a.csv` is
a.csv in the login's home directory.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import stat
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paramiko

from .. import known_hosts as kh
from .common import (
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
    without_userinfo,
)

# The file is read through paramiko's prefetch (pipelined read requests of MAX_REQUEST_SIZE,
# 32 KiB) one segment at a time: the requests of a segment go out at once, so that the pipe
# stays full, and no more than a segment's are outstanding.
READ_SIZE = paramiko.SFTPFile.MAX_REQUEST_SIZE
SEGMENT_BYTES = 256 * READ_SIZE

# paramiko logs every failed negotiation with a traceback at ERROR; the FetchError says it.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)
log = logging.getLogger(__name__)


class _UnknownHost(paramiko.SSHException):
    def __init__(self, name: str, key: paramiko.PKey) -> None:
        super().__init__(name)
        self.name, self.key = name, key


class _Refuse(paramiko.RejectPolicy):
    """An unknown server is refused (never added), and its key kept for the message."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHost(hostname, key)


def sftp_fetch(url: str, dest: Path, creds: Credentials, limits: Limits, deadline: float,
               progress: Progress | None) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 22
    path = _remote_path(unquote(parts.path))
    if not creds.username:
        raise FetchError(f"{redact(url)}: sftp needs a user name (in the URL, the Secret's "
                         "`username` key or MOLSTREAM_SOURCE_USERNAME)")
    if not creds.password and not creds.private_key:
        raise FetchError(f"{redact(url)}: sftp needs a private key (the Secret's "
                         "`ssh-privatekey` key, MOLSTREAM_SOURCE_SSH_KEY_FILE) or a password")
    pkey = _private_key(url, creds) if creds.private_key else None
    client = _client(url, host, port, limits)
    timeout = socket_timeout(limits, deadline)
    try:
        try:
            sock = connect_checked(host, port, limits, timeout)
        except OSError as e:
            raise Transient(f"cannot connect to {host}:{port}: {reason(e)}") from None
        try:
            client.connect(host, port, username=creds.username, password=creds.password,
                           pkey=pkey, sock=sock, timeout=timeout, banner_timeout=timeout,
                           auth_timeout=timeout, channel_timeout=timeout, allow_agent=False,
                           look_for_keys=False)
        except _UnknownHost as e:
            raise FetchError(
                f"{redact(url)}: host key unknown: no known_hosts entry names {e.name} "
                f"(the server offered {_describe(e.key)}); add the server's key to "
                "spec.sftp.knownHosts (or the chart's operator.sftp.knownHosts) after checking "
                "it with the server's administrator: an unknown key is never trusted") from None
        except paramiko.BadHostKeyException as e:
            raise FetchError(
                f"{redact(url)}: host key mismatch: the server offered {_describe(e.key)}, "
                f"known_hosts has {_describe(e.expected_key)} for it; refused (the server's "
                "key changed, or someone is in between)") from None
        except paramiko.AuthenticationException as e:
            how = " and ".join(w for w, given in (("private key", pkey), ("password",
                               creds.password)) if given)
            raise FetchError(f"{redact(url)}: login refused for user {creds.username!r} "
                             f"with the {how} ({_auth_reason(e)})") from None
        except paramiko.SSHException as e:
            if "no acceptable host key" in str(e).lower():
                raise FetchError(
                    f"{redact(url)}: host key unknown: the server has none of the key types "
                    f"known_hosts gives for {kh.host_key_name(host, port)}; refused") from None
            raise Transient(f"SSH failed with {host}:{port}: {_ssh_reason(e)}") from None
        except (OSError, EOFError) as e:
            raise Transient(f"cannot connect to {host}:{port}: {reason(e)}") from None
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(timeout)
        _download(url, path, sftp, dest, limits, deadline, progress)
    except (paramiko.SSHException, EOFError, OSError) as e:
        raise Transient(_ssh_reason(e) if isinstance(e, paramiko.SSHException)
                        else reason(e)) from None
    finally:
        client.close()


def _download(url: str, path: str, sftp: paramiko.SFTPClient, dest: Path, limits: Limits,
              deadline: float, progress: Progress | None) -> None:
    try:
        attrs = sftp.stat(path)
    except FileNotFoundError:
        raise FetchError(f"{redact(url)}: no such file") from None
    except PermissionError:
        raise FetchError(f"{redact(url)}: permission denied") from None
    if attrs.st_mode is not None and stat.S_ISDIR(attrs.st_mode):
        raise FetchError(f"{redact(url)}: a directory, not a file")
    size = attrs.st_size
    current = Validator(without_userinfo(url), mdtm=_mdtm(attrs.st_mtime), size=size)
    have = partial(dest)
    if have and not _same_version(Validator.load(dest, current.url), current, have):
        dest.unlink()  # the server's file is not the one we hold the start of
        have = 0
    if size is not None and have == size:
        return
    budget = Budget(url, have, size, limits, deadline, progress)  # (checks the space first)
    current.save(dest)
    try:
        remote = sftp.open(path, "rb")
    except PermissionError:
        raise FetchError(f"{redact(url)}: permission denied") from None
    except FileNotFoundError:
        raise FetchError(f"{redact(url)}: no such file") from None
    with remote, open(dest, "ab") as out:
        remote.seek(have)
        position, prefetched = have, have
        # One request's worth at a time: written as it arrives, so that a connection cut
        # mid-file leaves all it brought to resume from, and a trickle meets the deadline.
        while True:
            # (paramiko's prefetch ends early when the reader catches up with its request
            # thread, and reads one request per round trip from there: start it again.)
            stalled = position < prefetched and not getattr(remote, "_prefetching", True)
            if size is not None and position < size and (position == prefetched or stalled):
                prefetched = min(size, position + SEGMENT_BYTES)
                remote.prefetch(prefetched)
            block = remote.read(min(READ_SIZE, prefetched - position) if size is not None
                                and position < prefetched else READ_SIZE)
            if not block:
                break
            out.write(block)
            position += len(block)
            budget.add(len(block))
    if size is not None and partial(dest) < size:
        raise Transient(f"connection closed at byte {partial(dest)} of {size}")


def _client(url: str, host: str, port: int, limits: Limits) -> paramiko.SSHClient:
    """A client that knows the given host keys and nothing else: the administrator's when
    they name this server (they win), else the request's; an unknown host is refused."""
    if not limits.known_hosts.strip() and not limits.pinned_known_hosts.strip():
        raise FetchError(f"{redact(url)}: no known hosts given: an sftp:// source needs its "
                         "server's host key (spec.sftp.knownHosts, the chart's "
                         "operator.sftp.knownHosts, MOLSTREAM_SOURCE_KNOWN_HOSTS)")
    name = kh.host_key_name(host, port)
    pinned = _host_keys(url, limits.pinned_known_hosts,
                        "the operator's known hosts (MOLSTREAM_KNOWN_HOSTS)")
    given = _host_keys(url, limits.known_hosts,
                       "known hosts (spec.sftp.knownHosts, MOLSTREAM_SOURCE_KNOWN_HOSTS)")
    client = paramiko.SSHClient()
    trusted = client.get_host_keys()
    for hostname, keys in (pinned if pinned.lookup(name) is not None else given).items():
        for kind, key in keys.items():
            trusted.add(hostname, kind, key)
    client.set_missing_host_key_policy(_Refuse())
    return client


def _host_keys(url: str, text: str, where: str) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    try:
        lines = kh.check_lines(text, where=where)
    except ValueError as e:
        raise FetchError(f"{redact(url)}: {e}") from None
    for line in lines:
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        if entry is None:
            raise FetchError(f"{redact(url)}: {where}: a key paramiko cannot read")
        for hostname in entry.hostnames:
            keys.add(hostname, entry.key.get_name(), entry.key)
    return keys


def _private_key(url: str, creds: Credentials) -> paramiko.PKey:
    """The private key, in OpenSSH or PEM format: Ed25519, ECDSA or RSA."""
    text = creds.private_key or ""
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=creds.passphrase)
        except paramiko.PasswordRequiredException:
            raise FetchError(f"{redact(url)}: the private key is encrypted: give its passphrase "
                             "(the Secret's `passphrase` key)") from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise FetchError(f"{redact(url)}: the private key cannot be read: not an Ed25519, ECDSA "
                     "or RSA key in OpenSSH or PEM format, or a wrong passphrase")


def _same_version(saved: Validator | None, current: Validator, have: int) -> bool:
    """Both the size and the modification time known, and equal to the partial file's."""
    return (saved is not None and current.mdtm is not None and current.size is not None
            and (saved.mdtm, saved.size) == (current.mdtm, current.size) and have <= current.size)


def _mdtm(mtime: int | None) -> str | None:
    """The modification time as FTP's MDTM writes it (YYYYMMDDHHMMSS, UTC)."""
    return None if mtime is None else time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime))


def _remote_path(path: str) -> str:
    if path.startswith("/~/"):
        return path[3:]  # relative: the login's home directory
    return path


def _describe(key: paramiko.PKey) -> str:
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"an {key.get_name()} key SHA256:{digest}"


def _auth_reason(e: paramiko.AuthenticationException) -> str:
    log.debug("SSH authentication failed: %s: %s", type(e).__name__, e)
    if isinstance(e, paramiko.BadAuthenticationType):
        # (method names the server lists: shown when they look like method names)
        kinds = [t for t in e.allowed_types if re.fullmatch(r"[a-z0-9@.-]{1,64}", str(t))]
        return f"the server allows only {', '.join(kinds) or 'none we know'}"
    return "authentication failed"


#: paramiko's SSHException texts, by how they begin (lower case), in our words: some quote the
#: server (its banner: 'Indecipherable protocol version "..."'), which goes to the debug log.
_SSH_ERRORS = (
    ("error reading ssh protocol banner", "no SSH banner from the server (not an SSH server, or "
                                          "it closed the connection)"),
    ("indecipherable protocol version", "the server's banner is not SSH's (not an SSH server?)"),
    ("invalid ssh banner", "the server's banner is not SSH's (not an SSH server?)"),
    ("incompatible version", "the server speaks an SSH version other than 2.0"),
    ("incompatible ssh peer", "no algorithm in common with the server (key exchange, host key, "
                              "cipher or MAC)"),
    ("negotiation failed", "SSH negotiation failed"),
    ("mismatched mac", "SSH negotiation failed (a packet's MAC did not match)"),
    ("no existing session", "the SSH session ended"),
    ("ssh session not active", "the SSH session ended"),
    ("server connection dropped", "the server dropped the connection"),
    ("channel closed", "the server closed the SFTP channel"),
    ("unable to open channel", "the server refused an SFTP channel"),
    ("timeout opening channel", "timed out"),
    ("key-exchange timed out", "timed out"),
)


def _ssh_reason(e: paramiko.SSHException) -> str:
    """What went wrong, in a fixed phrase: never the text the server sent."""
    text = str(e).strip()
    log.debug("SSH error: %s: %s", type(e).__name__, text[:500])
    low = text.lower()
    for start, phrase in _SSH_ERRORS:
        if low.startswith(start):
            return phrase
    return f"an SSH protocol error ({type(e).__name__})"
