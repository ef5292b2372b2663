"""What a pod is to be bound to: the address, prefix, MAC and gateway read from the
Neutron-shaped annotations the network controller wrote on the pod (reference 003).

``clusterapi`` produces it from a pod object; ``plumbing`` applies it to the netns.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bayport.network.annotation_keys import NEUTRON_PORT, NEUTRON_SUBNET
from bayport.network.cni.spec import CNIError, Code


@dataclass(frozen=True, slots=True)
class PortBinding:
    port_id: str
    device_id: str
    mac: str
    address: str
    prefixlen: int
    version: int
    gateway: str | None
    dns_nameservers: tuple[str, ...]

    @property
    def cidr_address(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    @property
    def default_route(self) -> str:
        return "0.0.0.0/0" if self.version == 4 else "::/0"


def _bad(msg: str, details: str = "") -> CNIError:
    return CNIError(Code.BAD_PORT_ANNOTATION, msg, details)


def _document(annotations: Mapping[str, str], key: str) -> dict[str, Any]:
    try:
        doc = json.loads(annotations[key])
    except (TypeError, json.JSONDecodeError) as exc:
        raise _bad(f"annotation {key} is not JSON", str(exc)) from exc
    if not isinstance(doc, dict):
        raise _bad(f"annotation {key} is not a JSON object")
    return doc


def binding_from_annotations(annotations: Mapping[str, str] | None) -> PortBinding | None:
    """The binding, or None while the controller has not annotated the pod yet."""
    if not annotations or NEUTRON_PORT not in annotations or NEUTRON_SUBNET not in annotations:
        return None
    port = _document(annotations, NEUTRON_PORT)
    subnet = _document(annotations, NEUTRON_SUBNET)
    try:
        network = ipaddress.ip_network(str(subnet["cidr"]), strict=False)
        fixed = [f for f in port["fixed_ips"] if f.get("subnet_id") == subnet["id"]]
        address = ipaddress.ip_address(str(fixed[0]["ip_address"]))
        mac = str(port["mac_address"]).lower()
        gateway = subnet.get("gateway_ip")
        dns = tuple(str(s) for s in subnet.get("dns_nameservers") or ())
        port_id, device_id = str(port["id"]), str(port.get("device_id", ""))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise _bad("the port annotations lack a usable address, subnet or MAC", repr(exc)) from exc
    if address not in network:
        raise _bad(f"port address {address} is outside its subnet {network}")
    if gateway is not None and ipaddress.ip_address(str(gateway)) not in network:
        raise _bad(f"gateway {gateway} is outside the subnet {network}")
    return PortBinding(port_id=port_id, device_id=device_id, mac=mac, address=str(address),
                       prefixlen=network.prefixlen, version=network.version,
                       gateway=str(gateway) if gateway else None, dns_nameservers=dns)
