"""Which addresses the fetcher may connect to (no SSRF), and resolving a host to those only.

The fetcher resolves every host it is sent to (the URL's, each HTTP redirect's, FTP, FTPS and
SFTP servers', the probes' and the glob listings') and connects to the very address it checked,
never resolving again (no DNS rebinding between the check and the connection). An address is
refused when it is not a public one:

* loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0/8, ::), link-local (169.254.0.0/16,
  fe80::/10: the cloud metadata service), private (10/8, 172.16/12, 192.168/16, fc00::/7,
  fec0::/10), carrier-grade NAT (100.64.0.0/10), multicast, broadcast, reserved and
  documentation ranges, cloud platform addresses that are public ones (Azure's WireServer,
  168.63.129.16), and any IPv6 address that carries one of these IPv4 addresses
  (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96 and the local-use 64:ff9b:1::/48 of RFC 8215,
  6to4 2002::/16, IPv4-compatible ::/96). A local-use NAT64 address is read as the /96 form
  (64:ff9b:1::a.b.c.d); one in any other form (the IPv4 address elsewhere, by a shorter prefix
  of RFC 6052) is refused whatever it carries;

unless the settings allow it:

* ``MOLSTREAM_ALLOWED_NETWORKS``: CIDRs that may be reached although not public
  (``127.0.0.0/8,::1/128`` for a local run);
* ``MOLSTREAM_INTERNAL_HOSTS``: host names (``*.example.org`` too, as MOLSTREAM_ALLOWED_HOSTS)
  that may resolve to non-public addresses (an in-cluster mirror, the chart's demo FTP server);
* ``MOLSTREAM_DENIED_NETWORKS``: CIDRs always refused, public or not, whatever the two above
  say (a cluster's Pod and Service ranges when they are public addresses).

A host is refused when any address it resolves to is refused (a name that mixes public and
internal addresses is not one to trust). The operator passes its own values of these settings
to every fetcher Job.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from .hosts import host_allowed, parse_hosts

__all__ = ["AddressPolicy", "AddressRefused", "classify", "parse_networks"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
             ipaddress.ip_address("169.254.170.2")}
# What a few addresses are, said after their class.
_NOTES = {**{ip: " (cloud metadata)" for ip in _METADATA},
          ipaddress.ip_address("168.63.129.16"): " (Azure WireServer)"}

# (network, class) in the order they are looked up; the first that holds an address names it.
_V4 = [(ipaddress.ip_network(net), what) for net, what in (
    ("168.63.129.16/32", "a cloud platform"),  # Azure: DHCP, DNS, health probes, VM agent
    ("0.0.0.0/8", "an unspecified ('this network')"),
    ("127.0.0.0/8", "a loopback"),
    ("169.254.0.0/16", "a link-local"),
    ("10.0.0.0/8", "a private"),
    ("172.16.0.0/12", "a private"),
    ("192.168.0.0/16", "a private"),
    ("100.64.0.0/10", "a carrier-grade NAT (shared)"),
    ("224.0.0.0/4", "a multicast"),
    ("255.255.255.255/32", "a broadcast"),
    ("240.0.0.0/4", "a reserved"),
    ("192.0.0.0/24", "a reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "a reserved (documentation)"),
    ("198.51.100.0/24", "a reserved (documentation)"),
    ("203.0.113.0/24", "a reserved (documentation)"),
    ("198.18.0.0/15", "a reserved (benchmarking)"),
    ("192.88.99.0/24", "a reserved (6to4 relay anycast)"),
)]
_V6 = [(ipaddress.ip_network(net), what) for net, what in (
    ("::/128", "an unspecified"),
    ("::1/128", "a loopback"),
    ("fe80::/10", "a link-local"),
    ("fc00::/7", "a private (unique local)"),
    ("fec0::/10", "a private (site-local)"),
    ("ff00::/8", "a multicast"),
    ("2001:db8::/32", "a reserved (documentation)"),
    ("100::/64", "a reserved (discard-only)"),
)]
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, any prefix length of RFC 6052
_LOCAL_NAT64_96 = ipaddress.ip_network("64:ff9b:1::/96")
_COMPAT = ipaddress.ip_network("::/96")


class AddressRefused(RuntimeError):
    """A host resolves to an address the fetcher may not reach; the message says which, of what
    class, and how to allow it."""


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, compatible), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _LOCAL_NAT64_96 or (ip in _COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(address: str | IPAddress) -> str | None:
    """The class of a non-public address ("a loopback address", "a link-local address (cloud
    metadata)", ...),
    None for a public one."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    inner = _embedded_v4(ip)
    if inner is not None:
        what = classify(inner)
        kind = "an IPv4-mapped" if ip in _MAPPED else "an IPv6"
        return f"{kind} address of {inner}, {what}" if what else None
    if ip in _LOCAL_NAT64:  # (not of the /96 form: where its IPv4 address is, is not known)
        return ("a local-use NAT64 address (64:ff9b:1::/48) not of the form "
                "64:ff9b:1::a.b.c.d")
    table = _V4 if isinstance(ip, ipaddress.IPv4Address) else _V6
    for network, what in table:
        if ip in network:
            return what + " address" + _NOTES.get(ip, "")
    if not ip.is_global:
        return "a reserved (special-purpose) address"
    return None


def parse_networks(text: str | Iterable[str] | None, *, name: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); ValueError naming ``name``."""
    items = parse_hosts(text) if isinstance(text, str | None) else tuple(text)
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not a network in CIDR notation "
                             "(e.g. 10.0.0.0/8, fd00::/8)") from None
    return tuple(out)


def _within(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    forms = [ip] + ([inner] if (inner := _embedded_v4(ip)) is not None else [])
    return any(form.version == net.version and form in net for form in forms
               for net in networks)


@dataclass(frozen=True)
class AddressPolicy:
    """What the fetcher may connect to; the default refuses every non-public address."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    internal_hosts: tuple[str, ...] = ()
    denied_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, *, allowed_networks: str | Iterable[str] | None = None,
              internal_hosts: str | Iterable[str] | None = None,
              denied_networks: str | Iterable[str] | None = None) -> AddressPolicy:
        hosts = parse_hosts(internal_hosts) if isinstance(internal_hosts, str | None) else (
            tuple(h.strip() for h in internal_hosts if h.strip()))
        return cls(parse_networks(allowed_networks, name="MOLSTREAM_ALLOWED_NETWORKS"),
                   hosts, parse_networks(denied_networks, name="MOLSTREAM_DENIED_NETWORKS"))

    def refusal(self, host: str, address: str) -> str | None:
        """Why ``host`` may not be reached at ``address``, or None when it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # (an IPv6 zone index dropped)
        if _within(ip, self.denied_networks):
            return (f"host {host!r} resolves to {ip}, in a denied network "
                    "(MOLSTREAM_DENIED_NETWORKS); refused")
        what = classify(ip)
        if what is None:
            return None
        if self.internal_hosts and host_allowed(host, self.internal_hosts):
            return None
        if _within(ip, self.allowed_networks):
            return None
        return (f"host {host!r} resolves to {ip}, {what}; refused: set "
                "MOLSTREAM_ALLOWED_NETWORKS or MOLSTREAM_INTERNAL_HOSTS to allow it")

    def resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """The (address family, address) pairs of ``host``, every one checked, in the order
        the resolver gives them; AddressRefused when any is refused, socket.gaierror when the
        name does not resolve."""
        host = host.strip("[]")
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[tuple[int, str]] = []
        for family, _, _, _, sockaddr in infos:
            address = str(sockaddr[0])
            if (family, address) in found:
                continue
            why = self.refusal(host, address)
            if why is not None:
                raise AddressRefused(why)
            found.append((family, address))
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        return found

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """A TCP connection to one of ``host``'s checked addresses (the first that answers)."""
        last: OSError | None = None
        for family, address in self.resolve(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect((address, port))
                return sock
            except OSError as e:
                sock.close()
                last = e
        assert last is not None
        raise last

