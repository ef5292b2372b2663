"""Which pod holds which port address, cluster-wide: what a node checks before it binds one.

Admission (``pod_network_admission``) lets only the pod-network controller write the port
annotation; this is the node's own line behind it. Every node agent of a cluster shares one
``PortClaims``: before binding the address a pod's ``kuryr.org/neutron-port`` names, the agent
claims it here. The claim is refused when the address is not a unicast one (127.0.0.1,
link-local, multicast), lies in the Service network, lies neither in the bay's pod pool nor in
the subnet of the port (an operator may give a namespace a subnet of its own), is a network,
broadcast or gateway address, is held by another live pod, or when the port says it belongs to
a different pod (``device_id`` is the pod uid IPAM recorded). The agent then fails the pod with
the reason instead of binding.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.addresses import PORT_ANNOTATION

SUBNET_ANNOTATION = "kuryr.org/neutron-subnet"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class PortClaims:
    def __init__(self, pod_pool: str | None, service_cidr: str | None = None) -> None:
        self.pool = ipaddress.ip_network(pod_pool, strict=False) if pod_pool else None
        self.services = ipaddress.ip_network(service_cidr, strict=False) if service_cidr else None
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
        if (address.is_loopback or address.is_link_local or address.is_multicast
                or address.is_unspecified or address.is_reserved):
            return "it is not a unicast pod address"
        if self.services is not None and address in self.services:
            return f"it is in the Service network {self.services}"
        subnet, gateway = _subnet(pod)
        ranges = [n for n in (self.pool, subnet) if n is not None and address in n]
        if self.pool is not None and not ranges:
            where = f" or the port's subnet {subnet}" if subnet is not None else ""
            return f"it is outside the bay's pod pool {self.pool}{where}"
        for net in ranges:
            if net.num_addresses > 2 and address in (net.network_address, net.broadcast_address):
                return f"it is the network or broadcast address of {net}"
        if gateway is not None and address == gateway:
            return "it is the subnet's gateway address"
        holder = self._holder.get(ip)
        if holder is not None and holder != uid:
            return f"pod {holder} is already bound to it"
        device = _device_id(pod)
        if device and device != uid:
            return f"the port belongs to device {device}, not to this pod ({uid})"
        return None


def _annotation(pod: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        value = json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _subnet(pod: Mapping[str, Any]) -> tuple[Network | None, Address | None]:
    """The port's subnet and gateway, from the subnet annotation (written with the port's)."""
    subnet = _annotation(pod, SUBNET_ANNOTATION) or {}
    try:
        cidr = ipaddress.ip_network(str(subnet["cidr"]), strict=False) if subnet.get("cidr") else None
        gateway = ipaddress.ip_address(str(subnet["gateway_ip"])) if subnet.get("gateway_ip") else None
    except ValueError:
        return None, None
    return cidr, gateway


def _device_id(pod: Mapping[str, Any]) -> str | None:
    device = (_annotation(pod, PORT_ANNOTATION) or {}).get("device_id")
    return str(device) if device else None
