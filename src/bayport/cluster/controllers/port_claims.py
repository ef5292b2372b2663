"""Which pod holds which port address, cluster-wide: what a node checks before it binds one.

Admission (``pod_network_admission``) lets only the pod-network controller write the port
annotation; this is the node's own line behind it. Every node agent of a cluster shares one
``PortClaims``: before binding the address a pod's ``kuryr.org/neutron-port`` names, the agent
claims it here, and the claim is refused when the address lies outside the bay's pod pool (a
Service IP, 127.0.0.1, the host's networks), is the pool's network or broadcast address, is held
by another live pod, or the port says it belongs to a different pod (``device_id`` is the pod
uid IPAM recorded). The agent then fails the pod with the reason instead of binding.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.addresses import PORT_ANNOTATION


class PortClaims:
    def __init__(self, pod_pool: str | None) -> None:
        self.pool = ipaddress.ip_network(pod_pool, strict=False) if pod_pool else None
        self._holder: dict[str, str] = {}          # address → uid of the pod bound to it
        self._held: dict[str, str] = {}            # uid → address

    def holder(self, ip: str) -> str | None:
        return self._holder.get(ip)

    def claim(self, pod: Mapping[str, Any], ip: str) -> str | None:
        """Hold ``ip`` for ``pod``; None when it may bind it, else why not (for the pod's status)."""
        uid = str(pod["metadata"]["uid"])
        refusal = self._refusal(pod, uid, ip)
        if refusal is not None:
            return f"refusing to bind {ip} from the {PORT_ANNOTATION} annotation: {refusal}"
        previous = self._held.get(uid)
        if previous is not None and previous != ip:
            self._holder.pop(previous, None)
        self._holder[ip] = uid
        self._held[uid] = ip
        return None

    def adopt(self, uid: str, ip: str) -> None:
        """Record an address a running pod already has (after a restart), unless another holds it."""
        if ip not in self._holder:
            self._holder[ip] = uid
            self._held[uid] = ip

    def release(self, uid: str) -> None:
        ip = self._held.pop(uid, None)
        if ip is not None and self._holder.get(ip) == uid:
            del self._holder[ip]

    def _refusal(self, pod: Mapping[str, Any], uid: str, ip: str) -> str | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return "not an IP address"
        pool = self.pool
        if pool is not None:
            if address.version != pool.version or address not in pool:
                return f"it is outside the bay's pod pool {pool}"
            if address in (pool.network_address, pool.broadcast_address):
                return f"it is the network or broadcast address of the pod pool {pool}"
        holder = self._holder.get(ip)
        if holder is not None and holder != uid:
            return f"pod {holder} is already bound to it"
        device = _device_id(pod)
        if device and device != uid:
            return f"the port belongs to device {device}, not to this pod ({uid})"
        return None


def _device_id(pod: Mapping[str, Any]) -> str | None:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    try:
        port = json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return None
    device = port.get("device_id") if isinstance(port, dict) else None
    return str(device) if device else None
