"""Address arithmetic for IPAM: a subnet's allocation pools laid end to end as one
sequence of positions, so the allocator's cursor is a single integer and turning a
position into an address is O(number of pools) (almost always one), never a scan.

Used by ``allocator`` (position → address) and ``networks`` (default pools,
gateway, carving a namespace subnet from a bay's pod pool).
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bayport import errors

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Positions are stored in a signed 64-bit column; an IPv6 pool larger than this is
# truncated to its first 2**62 addresses, which no cluster will ever exhaust.
MAX_POOL_SIZE = 2 ** 62
# OpenStack's MAC prefix (Neutron's base_mac), as in the reference annotation.
MAC_PREFIX = "fa:16:3e"


def parse_network(cidr: str, *, field: str = "cidr") -> IPNetwork:
    try:
        return ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise errors.InvalidInput(f"{cidr!r} is not a network address in CIDR form: {exc}",
                                  field=field) from exc


def _host_bounds(net: IPNetwork) -> tuple[int, int]:
    """First and last address a host may take: IPv4 loses network and broadcast."""
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.version == 4:
        first, last = first + 1, last - 1
    else:
        first += 1  # the subnet-router anycast address
    if last < first:
        raise errors.InvalidInput(f"{net} is too small to hold any host", field="cidr")
    return first, last


def default_gateway(net: IPNetwork) -> str:
    return str(ipaddress.ip_address(_host_bounds(net)[0]))


def default_pools(net: IPNetwork, gateway_ip: str | None) -> list[dict[str, str]]:
    """Neutron's default: every host address except the gateway, as one or two ranges."""
    first, last = _host_bounds(net)
    ranges: list[tuple[int, int]] = [(first, last)]
    if gateway_ip is not None:
        gw = int(ipaddress.ip_address(gateway_ip))
        if first <= gw <= last:
            ranges = [(a, b) for a, b in ((first, gw - 1), (gw + 1, last)) if a <= b]
    if not ranges:
        raise errors.InvalidInput(f"{net} has no address left besides its gateway", field="cidr")
    return [{"start": str(ipaddress.ip_address(a)), "end": str(ipaddress.ip_address(b))}
            for a, b in ranges]


@dataclass(frozen=True, slots=True)
class PoolLayout:
    """The allocation pools of one subnet as a sequence of positions 0 … size-1."""

    version: int
    starts: tuple[int, ...]
    offsets: tuple[int, ...]
    size: int

    @classmethod
    def of(cls, cidr: str, pools: Sequence[dict[str, Any]], *,
           gateway_ip: str | None = None) -> PoolLayout:
        """Validate ``pools`` against ``cidr`` (inside it, disjoint, gateway outside them)."""
        net = parse_network(cidr)
        lo, hi = int(net.network_address), int(net.broadcast_address)
        spans: list[tuple[int, int]] = []
        for pool in pools:
            try:
                start = ipaddress.ip_address(str(pool["start"]))
                end = ipaddress.ip_address(str(pool["end"]))
            except (KeyError, ValueError) as exc:
                raise errors.InvalidInput(f"bad allocation pool {pool!r}: {exc}",
                                          field="allocation_pools") from exc
            a, b = int(start), int(end)
            if start.version != net.version or not lo <= a <= b <= hi:
                raise errors.InvalidInput(f"allocation pool {pool!r} is not inside {cidr}",
                                          field="allocation_pools")
            spans.append((a, b))
        spans.sort()
        for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
            if next_start <= prev_end:
                raise errors.InvalidInput("allocation pools overlap", field="allocation_pools")
        if gateway_ip is not None:
            gw = int(ipaddress.ip_address(gateway_ip))
            if any(a <= gw <= b for a, b in spans):
                raise errors.InvalidInput(f"gateway {gateway_ip} lies inside an allocation pool",
                                          field="gateway_ip")
        starts: list[int] = []
        offsets: list[int] = []
        size = 0
        for a, b in spans:
            if size >= MAX_POOL_SIZE:
                break
            starts.append(a)
            offsets.append(size)
            size = min(MAX_POOL_SIZE, size + b - a + 1)
        if size == 0:
            raise errors.InvalidInput("a subnet needs at least one allocation pool",
                                      field="allocation_pools")
        return cls(version=net.version, starts=tuple(starts), offsets=tuple(offsets), size=size)

    def address_at(self, index: int) -> str:
        if not 0 <= index < self.size:
            raise IndexError(f"position {index} outside the pools (size {self.size})")
        pool = bisect.bisect_right(self.offsets, index) - 1
        value = self.starts[pool] + index - self.offsets[pool]
        return str(ipaddress.IPv4Address(value) if self.version == 4 else ipaddress.IPv6Address(value))

    def addresses(self, start: int, end: int) -> Iterator[str]:
        for index in range(max(0, start), min(end, self.size)):
            yield self.address_at(index)


def carve(pool: IPNetwork, prefix: int) -> Iterator[IPNetwork]:
    """Every ``/prefix`` inside ``pool``, lowest first, generated lazily."""
    if not pool.prefixlen <= prefix <= pool.max_prefixlen:
        raise errors.InvalidInput(f"cannot carve /{prefix} subnets from {pool}", field="prefix")
    step = 1 << (pool.max_prefixlen - prefix)
    base = int(pool.network_address)
    for index in range(1 << (prefix - pool.prefixlen)):
        yield ipaddress.ip_network((base + index * step, prefix))


def random_mac() -> str:
    """A locally administered unicast MAC under OpenStack's ``fa:16:3e`` prefix."""
    tail = secrets.token_bytes(3)
    return MAC_PREFIX + "".join(f":{b:02x}" for b in tail)
