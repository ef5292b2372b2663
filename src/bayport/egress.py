"""Which addresses Bayport itself may connect to on a tenant's behalf.

A tenant hands Bayport URLs: a ``manifest_url`` to download, a kubeconfig whose server the
conductor probes. Without a check they reach whatever the host reaches: its loopback
services (the API, PostgreSQL), the cloud's metadata address, the operator's private
network. One rule serves both: an address is *public* when it is globally routable, and an
IPv6 address that carries an IPv4 address inside it (IPv4-mapped, IPv4-compatible, NAT64
``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo) is public only if every
IPv4 address it carries is public too — otherwise ``64:ff9b::7f00:1`` is 127.0.0.1 through a
NAT64 gateway. The operator may allow more: private addresses altogether
(``allow_private``), or chosen networks (``allowed``), for clusters on the site's own
network.

This module only decides; the callers resolve once, check every address, and connect to the
address they checked (``kube.fetch``) or check the peer of the connection they made
(``drivers.kubeconfig``), so a name cannot rebind between check and use.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 6052 well-known NAT64 prefix and RFC 8215 local-use prefix: the IPv4 address is the last
# 32 bits. (The mapped and 6to4 forms have properties of their own in ``ipaddress``.)
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class RefusedAddress(ValueError):
    """A destination the policy does not allow; the message says which address and why."""


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (empty for a plain IPv6 or an IPv4 address)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    carried: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        carried.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        carried.append(address.sixtofour)
    if address.teredo is not None:
        carried.extend(address.teredo)
    if any(address in net for net in _NAT64) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return carried


def is_public(address: IPAddress) -> bool:
    """Globally routable, not multicast, and carrying no private IPv4 address inside."""
    inner = embedded_ipv4(address)
    if inner:
        return all(is_public(v4) for v4 in inner)
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class EgressPolicy:
    """Public addresses always; private ones if ``allow_private`` or inside ``allowed``."""

    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def of(cls, *, allow_private: bool = False, allowed: Iterable[str] = ()) -> EgressPolicy:
        return cls(allow_private=allow_private,
                   allowed=tuple(ipaddress.ip_network(n, strict=False) for n in allowed))

    def permits(self, address: IPAddress) -> bool:
        if self.allow_private or is_public(address):
            return True
        candidates: list[IPAddress] = [address, *embedded_ipv4(address)]
        return any(a in net for a in candidates for net in self.allowed if a.version == net.version)

    def check(self, host: str, addresses: Sequence[IPAddress]) -> None:
        """Raise RefusedAddress unless every address ``host`` resolved to is permitted."""
        for address in addresses:
            if not self.permits(address):
                shown = host if host == str(address) else f"{host} resolves to {address}, which"
                raise RefusedAddress(
                    f"{shown} is a loopback, private, link-local or otherwise non-public address; "
                    "connections there on a tenant's behalf are refused")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedAddress(f"cannot resolve host {host!r}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise RefusedAddress(f"cannot resolve host {host!r}")
    return addresses


async def resolve_permitted(host: str, port: int, policy: EgressPolicy) -> list[IPAddress]:
    """Resolve ``host`` and check every address against ``policy``."""
    addresses = await resolve(host, port)
    policy.check(host, addresses)
    return addresses
