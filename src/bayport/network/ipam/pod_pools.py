"""Which IPv4 pool a local bay's pods take their addresses from: a /16 of its own.

Pods of a podman bay are reachable from the host through the bay's bridge, so two bays (of one
server, or of two servers with different data dirs on one machine) must never share a prefix:
the host keeps one route per prefix and only the first bridge would be reached. At create the
conductor gives each local bay the first /16 of ``POOL_SUPERNET`` that no other bay in the
database holds (``bays.pod_pool`` is unique) and that overlaps no route on this host (other
servers' bays claim their whole pool with a route, ``runtime.podman_net``). Namespace subnets
(``networks``) and node pod CIDRs are then carved from that pool.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

from bayport import errors

POOL_SUPERNET = ipaddress.IPv4Network("10.128.0.0/9")
POOL_PREFIX = 16
ROUTE_TABLE = Path("/proc/net/route")


def host_routes(table: Path = ROUTE_TABLE) -> list[ipaddress.IPv4Network]:
    """IPv4 destinations routed on this host (the default route left out)."""
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return []
    routes = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest, mask = (socket.inet_ntoa(struct.pack("<L", int(fields[i], 16))) for i in (1, 7))
        net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        if net.prefixlen:
            routes.append(net)
    return routes


def choose_pod_pool(taken: Iterable[str], routes: Iterable[ipaddress.IPv4Network]) -> str:
    """The first pool no bay holds and no host route overlaps; InvalidInput when none is left."""
    held = {ipaddress.IPv4Network(p) for p in taken}
    busy = list(routes)
    for pool in POOL_SUPERNET.subnets(new_prefix=POOL_PREFIX):
        if pool in held or any(pool.overlaps(r) for r in busy):
            continue
        return str(pool)
    raise errors.Conflict(f"no free pod pool left in {POOL_SUPERNET}: every /{POOL_PREFIX} is held by "
                          "a bay or routed on this host")
