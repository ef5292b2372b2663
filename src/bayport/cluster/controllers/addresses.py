"""IPv4 address pools for pod IPs (one per node's spec.podCIDR) and service ClusterIPs.

Allocation is host-local style: sequential from the first usable address, wrapping around and
skipping addresses in use, so a freed address is reused only after the rest of the range — an
endpoint list never sees a new pod appear under a just-deleted pod's IP. Amortised O(1) while the
range is sparsely used, which it is (110 pods in a /24, services in a /16).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

PORT_ANNOTATION = "kuryr.org/neutron-port"


class AddressPool:
    def __init__(self, cidr: str, *, skip_first: int = 1) -> None:
        """``skip_first`` host addresses are never handed out (the gateway .1 for pod ranges)."""
        network = ipaddress.IPv4Network(cidr, strict=False)
        self.cidr = str(network)
        self._base = int(network.network_address)
        first = 1 + skip_first if network.num_addresses > 2 else 0
        last = network.num_addresses - 2 if network.num_addresses > 2 else network.num_addresses - 1
        self._first = first                     # offsets relative to the network address
        self._last = last
        self._next = first
        self._used: set[int] = set()

    @property
    def size(self) -> int:
        return self._last - self._first + 1

    def __len__(self) -> int:
        return len(self._used)

    def contains(self, ip: str) -> bool:
        offset = self._offset(ip)
        return offset is not None and self._first <= offset <= self._last

    def allocate(self) -> str | None:
        if len(self._used) >= self.size:
            return None
        offset = self._next
        while offset in self._used:
            offset = offset + 1 if offset < self._last else self._first
        self._used.add(offset)
        self._next = offset + 1 if offset < self._last else self._first
        return str(ipaddress.IPv4Address(self._base + offset))

    def reserve(self, ip: str) -> bool:
        """Mark ``ip`` used (adoption, a requested ClusterIP); False if taken or out of range."""
        offset = self._offset(ip)
        if offset is None or offset in self._used or not 0 < offset <= self._last:
            return False
        self._used.add(offset)
        return True

    def release(self, ip: str) -> None:
        offset = self._offset(ip)
        if offset is not None:
            self._used.discard(offset)

    def _offset(self, ip: str) -> int | None:
        try:
            value = int(ipaddress.IPv4Address(ip)) - self._base
        except ValueError:
            return None
        return value if 0 <= value <= self._last + 1 else None


def pod_cidr_of(node: Mapping[str, Any]) -> str | None:
    spec = node.get("spec") or {}
    cidr = spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or ()), None)
    return str(cidr) if cidr else None


def internal_ip_of(node: Mapping[str, Any]) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or ():
        if addr.get("type") == "InternalIP" and addr.get("address"):
            return str(addr["address"])
    return None


def port_address(pod: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(ip, mac) from the pod's ``kuryr.org/neutron-port`` annotation; None if absent or unusable."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    if not raw:
        return None
    try:
        port = json.loads(raw)
        ip = port["fixed_ips"][0]["ip_address"]
        ipaddress.ip_address(ip)
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    mac = port.get("mac_address") if isinstance(port, dict) else None
    return str(ip), (str(mac) if mac else None)
