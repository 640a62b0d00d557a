"""SSRF guard: address classification (IPv4, IPv6, embedded forms) and resolve-then-pin."""

from __future__ import annotations

import ipaddress

import httpcore
import pytest

from herald.channels.base import MessageRejected
from herald.channels.ssrf import AddressPolicy, PinnedBackend, parse_ip, refusal_reason, resolve_checked


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "cgnat"),
        ("100.127.255.254", "cgnat"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "private"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "private"),
        ("255.255.255.255", "private"),
        ("192.0.2.10", "private"),  # documentation range
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),
    ],
)
def test_non_public_addresses_are_classified(address: str, reason: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:100.64.1.1", "cgnat"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1; Python calls this prefix global
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", "private"),
    ],
)
def test_embedded_ipv4_forms_are_judged_by_the_ipv4_inside(address: str, inner: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None and reason.startswith(inner)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_parse_ip_drops_an_ipv6_zone() -> None:
    assert parse_ip("fe80::1%eth0") == ipaddress.ip_address("fe80::1")


def test_policy_allows_by_cidr_including_the_mapped_form() -> None:
    policy = AddressPolicy.build(allow_cidrs=["127.0.0.0/8"])
    policy.check(ipaddress.ip_address("127.0.0.1"), "localhost")
    policy.check(ipaddress.ip_address("::ffff:127.0.0.1"), "localhost")
    with pytest.raises(MessageRejected) as info:
        policy.check(ipaddress.ip_address("10.0.0.1"), "intranet")
    assert info.value.code == "destination_refused"


def test_policy_allow_private_allows_everything() -> None:
    AddressPolicy(allow_private=True).check(ipaddress.ip_address("169.254.169.254"), "metadata")


async def test_a_name_resolving_to_loopback_is_refused_by_default() -> None:
    with pytest.raises(MessageRejected) as info:
        await resolve_checked("localhost", 80, AddressPolicy())
    assert info.value.code == "destination_refused"
    assert "loopback" in str(info.value)


async def test_a_name_resolving_to_loopback_is_allowed_when_configured() -> None:
    addresses = await resolve_checked("localhost", 80, AddressPolicy.build(allow_cidrs=["127.0.0.0/8", "::1/128"]))
    assert "127.0.0.1" in addresses


async def test_integer_and_shorthand_ip_spellings_resolve_to_what_they_mean() -> None:
    for spelling in ["2130706433", "127.1", "0x7f.0.0.1"]:
        with pytest.raises(MessageRejected):
            await resolve_checked(spelling, 80, AddressPolicy())


async def test_pinned_backend_never_opens_a_socket_to_a_refused_address() -> None:
    backend = PinnedBackend(AddressPolicy(), inner=httpcore.AsyncMockBackend([]))
    with pytest.raises(MessageRejected):
        await backend.connect_tcp("localhost", 80, timeout=5)


async def test_pinned_backend_connects_to_the_checked_address() -> None:
    seen: list[str] = []

    class Recording(httpcore.AsyncMockBackend):
        async def connect_tcp(
            self, host: str, port: int, *args: object, **kwargs: object
        ) -> httpcore.AsyncNetworkStream:
            seen.append(host)
            return await super().connect_tcp(host, port)

    policy = AddressPolicy.build(allow_cidrs=["127.0.0.0/8", "::1/128"])
    await PinnedBackend(policy, inner=Recording([])).connect_tcp("localhost", 80, timeout=5)
    # The socket layer is handed the checked IP, never the name, so it cannot look the name up again.
    assert len(seen) == 1 and parse_ip(seen[0]).is_loopback


async def test_unresolvable_names_are_a_connect_error() -> None:
    with pytest.raises(httpcore.ConnectError):
        await resolve_checked("no-such-host.invalid", 80, AddressPolicy())
