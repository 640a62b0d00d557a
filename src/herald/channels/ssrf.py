"""SSRF guard for user-configured URLs: classify addresses, resolve once, connect only to what was checked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore

from herald.channels.base import MessageRejected

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# NAT64 prefixes embed an IPv4 address in the last 32 bits; Python counts 64:ff9b::/96 as global.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _own_reason(ip: IPAddress) -> str | None:
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "cgnat"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "not-global"),
    )
    return next((reason for hit, reason in checks if hit), None)


def refusal_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast destination, or None if it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # A dual-stack socket sends ::ffff:a.b.c.d to a.b.c.d, so only the IPv4 inside counts.
            inner = _own_reason(ip.ipv4_mapped)
            return None if inner is None else f"{inner} (embedded in {ip})"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = _own_reason(embedded)
            if inner is not None:
                return f"{inner} (embedded in {ip})"
    return _own_reason(ip)


def parse_ip(text: str) -> IPAddress:
    """Parse an address as getaddrinfo returns it (an IPv6 zone like `%eth0` is dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Public addresses only, unless private ones are allowed wholesale or by CIDR (tests, intranets)."""

    allow_private: bool = False
    allow_cidrs: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, *, allow_private: bool = False, allow_cidrs: Iterable[str] = ()) -> AddressPolicy:
        networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allow_cidrs)
        return cls(allow_private=allow_private, allow_cidrs=networks)

    def _listed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c in net for c in candidates for net in self.allow_cidrs if c.version == net.version)

    def check(self, ip: IPAddress, host: str) -> None:
        """Raise MessageRejected (code `destination_refused`) unless `ip` may be contacted."""
        reason = refusal_reason(ip)
        if reason is None or self.allow_private or self._listed(ip):
            return
        raise MessageRejected(f"{host} resolves to {ip}, a {reason} address", code="destination_refused")


async def resolve_checked(host: str, port: int, policy: AddressPolicy) -> list[str]:
    """Resolve `host` once; refuse if ANY address is refused (a mixed answer is a rebinding smell)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        policy.check(parse_ip(address), host)
    return addresses


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses it resolved and checked itself.

    httpcore still sees the URL's host name, so the Host header, TLS SNI and certificate verification all
    use the name, while the socket goes to the checked address: no second lookup for rebinding to race.
    """

    def __init__(self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_checked(host, port, self._policy)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # getaddrinfo never answers with an empty list
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not a webhook destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
