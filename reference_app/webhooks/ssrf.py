"""The SSRF guard: a user-supplied webhook URL may only reach the public internet.

Checked twice. At submission, the URL's form (scheme, userinfo, host spelling,
literal addresses, internal host names) so a bad URL gets a 422 the user can act
on. At send time, the name again, then every A and AAAA record of the host, and
the delivery connects to the address that was checked, so a DNS answer that
changes in between (rebinding) cannot reach an internal host.

``ipaddress``'s ``is_global`` alone is not enough: it calls some IPv6 forms
that embed a private IPv4 address (6to4, NAT64) global. Those are unpacked and
the embedded address is checked too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from reference_app.webhooks.hostnames import internal_name_reason

__all__ = [
    "AllowList",
    "IPAddress",
    "Resolver",
    "UnsafeURL",
    "check_url",
    "forbidden_reason",
    "resolve_checked",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048

_V4_BLOCKED = [
    (ipaddress.IPv4Network(net), why)
    for net, why in [
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("168.63.129.16/32", "Azure's host address (WireServer), reached from every Azure VM"),
        ("169.254.0.0/16", "a link-local address (cloud metadata lives here)"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    ]
]
_V6_BLOCKED = [
    (ipaddress.IPv6Network(net), why)
    for net, why in [
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("100::/64", "a discard-only address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("2001::/32", "a Teredo address"),
        ("2001:db8::/32", "a documentation address"),
        ("fc00::/7", "a unique local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    ]
]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class UnsafeURL(ValueError):
    """A URL the guard refuses; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class AllowList:
    """Hosts and networks exempt from the guard (``APP_WEBHOOK_ALLOW``), for demos and tests."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """From host names, addresses and CIDRs: ``["127.0.0.1", "10.0.0.0/8", "hooks.test"]``."""
        hosts: set[str] = set()
        networks = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    @classmethod
    def from_setting(cls, value: str) -> AllowList:
        """From ``APP_WEBHOOK_ALLOW``: comma-separated hosts, addresses and CIDRs."""
        return cls.parse(value.split(","))

    def allows_host(self, host: str) -> bool:
        return host.lower() in self.hosts

    def allows_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be a webhook target, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        for net6, why in _V6_BLOCKED:
            if ip in net6:
                return why
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            if inner is not None:
                return f"an IPv6 form of {embedded}, {inner}"
    else:
        for net4, why in _V4_BLOCKED:
            if ip in net4:
                return why
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            return "a broadcast address"
    if not ip.is_global:
        return "not a public address"
    return None


def _legacy_ipv4(host: str) -> str | None:
    """The address a non-canonical IPv4 spelling (``127.1``, ``0x7f.1``, ``2130706433``) means."""
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def _ascii_host(host: str) -> str:
    """The host as DNS and the client will see it: IDNA (UTS 46) maps full-width digits
    and ideographic full stops to ASCII, so those spellings of an address are checked too."""
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise UnsafeURL(f"the host name is not a valid internationalised name: {exc}") from None


def check_url(url: str, allow: AllowList = AllowList()) -> str:
    """Check a webhook URL's form; return it, or raise UnsafeURL with the reason."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UnsafeURL("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"the URL cannot be parsed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeURL("only http and https URLs are accepted")
    if "@" in parts.netloc:
        raise UnsafeURL("the URL may not contain a user name or password")
    host = _ascii_host(parts.hostname or "")
    if not host:
        raise UnsafeURL("the URL has no host")
    if port == 0:
        raise UnsafeURL("port 0 is not a valid port")
    if allow.allows_host(host):
        return url
    if "%" in host:
        raise UnsafeURL("IPv6 zone identifiers are not accepted")
    if (internal := internal_name_reason(host)) is not None:
        raise UnsafeURL(f"{internal}; use a public host")
    if host.endswith("."):
        raise UnsafeURL("a host name may not end with a dot")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        if allow.allows_ip(ip):
            return url
        reason = forbidden_reason(ip)
        if reason is not None:
            raise UnsafeURL(f"{host} is {reason}; use a public address")
        return url
    spelled = _legacy_ipv4(host)
    if spelled is not None:
        raise UnsafeURL(f"{host!r} is a non-standard spelling of the IPv4 address {spelled}")
    return url


async def system_resolver(host: str, port: int) -> list[str]:
    """Every A and AAAA address of ``host``, from the system resolver."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # the resolver's order


async def resolve_checked(
    host: str, port: int, allow: AllowList, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """Resolve ``host`` and check every address; any disallowed one blocks the send."""
    if not allow.allows_host(host) and (internal := internal_name_reason(host)) is not None:
        raise UnsafeURL(f"{internal}; refused without a DNS lookup")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    addresses = (
        [literal]
        if literal is not None
        else [ipaddress.ip_address(a.split("%")[0]) for a in await resolver(host, port)]
    )
    if not addresses:
        raise UnsafeURL(f"{host} has no addresses")
    if allow.allows_host(host):
        return addresses
    for ip in addresses:
        reason = None if allow.allows_ip(ip) else forbidden_reason(ip)
        if reason is not None:
            raise UnsafeURL(f"{host} resolves to {ip}, {reason}")
    return addresses
