"""What IPAM hands back: immutable records of networks, subnets and ports, and their
Neutron-shaped dictionaries.

The controller writes ``neutron_port_dict``/``neutron_subnet_dict`` into the pod's
``kuryr.org/neutron-port`` and ``kuryr.org/neutron-subnet`` annotations (field names
exactly as in reference 003); ``bayport-cni`` and the node agents read them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bayport.network.annotation_keys import NEUTRON_PORT, NEUTRON_SUBNET, PORT_ID

DEVICE_OWNER = "bayport:container"
# The host side is a veth pair on a Linux bridge; nothing filters the port's traffic.
VIF_TYPE = "bridge"


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    id: str
    name: str
    project_id: str
    bay_uuid: str
    namespace: str
    status: str
    created_at: datetime

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> NetworkRecord:
        return cls(id=row["id"], name=row["name"], project_id=row["project_id"],
                   bay_uuid=row["bay_uuid"], namespace=row["namespace"], status=row["status"],
                   created_at=row["created_at"])


@dataclass(frozen=True, slots=True)
class SubnetRecord:
    id: str
    network_id: str
    bay_uuid: str
    name: str
    cidr: str
    gateway_ip: str | None
    ip_version: int
    allocation_pools: tuple[dict[str, str], ...]
    dns_nameservers: tuple[str, ...]
    host_routes: tuple[dict[str, str], ...]
    enable_dhcp: bool
    project_id: str
    subnetpool_id: str | None
    pool_size: int

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> SubnetRecord:
        return cls(id=row["id"], network_id=row["network_id"], bay_uuid=row["bay_uuid"],
                   name=row["name"], cidr=row["cidr"], gateway_ip=row["gateway_ip"],
                   ip_version=row["ip_version"],
                   allocation_pools=tuple(dict(p) for p in row["allocation_pools"]),
                   dns_nameservers=tuple(row["dns_nameservers"]),
                   host_routes=tuple(dict(r) for r in row["host_routes"]),
                   enable_dhcp=bool(row["enable_dhcp"]), project_id=row["project_id"],
                   subnetpool_id=row["subnetpool_id"], pool_size=int(row["pool_size"]))

    @property
    def prefixlen(self) -> int:
        return int(self.cidr.rpartition("/")[2])


@dataclass(frozen=True, slots=True)
class FixedIP:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True, slots=True)
class PortRecord:
    id: str
    name: str
    network_id: str
    project_id: str
    bay_uuid: str
    namespace: str
    mac_address: str
    fixed_ips: tuple[FixedIP, ...]
    device_owner: str
    device_id: str
    host_id: str | None
    status: str
    admin_state_up: bool
    created_at: datetime

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> PortRecord:
        return cls(id=row["id"], name=row["name"], network_id=row["network_id"],
                   project_id=row["project_id"], bay_uuid=row["bay_uuid"],
                   namespace=row["namespace"], mac_address=row["mac_address"],
                   fixed_ips=tuple(FixedIP(subnet_id=f["subnet_id"], ip_address=f["ip_address"])
                                   for f in row["fixed_ips"]),
                   device_owner=row["device_owner"], device_id=row["device_id"],
                   host_id=row["host_id"], status=row["status"],
                   admin_state_up=bool(row["admin_state_up"]),
                   created_at=row["created_at"])

    @property
    def ip_address(self) -> str:
        """The pod's address (ports created by IPAM carry exactly one fixed IP)."""
        return self.fixed_ips[0].ip_address

    @property
    def subnet_id(self) -> str:
        return self.fixed_ips[0].subnet_id


def neutron_port_dict(port: PortRecord) -> dict[str, Any]:
    """The port as Neutron's API shows it (the ``kuryr.org/neutron-port`` annotation)."""
    return {
        "id": port.id,
        "name": port.name,
        "network_id": port.network_id,
        "tenant_id": port.project_id,
        "mac_address": port.mac_address,
        "fixed_ips": [{"subnet_id": f.subnet_id, "ip_address": f.ip_address} for f in port.fixed_ips],
        "device_owner": port.device_owner,
        "device_id": port.device_id,
        "status": port.status,
        "admin_state_up": port.admin_state_up,
        "port_security_enabled": False,
        "security_groups": [],
        "allowed_address_pairs": [],
        "binding:host_id": port.host_id,
        "binding:vnic_type": "normal",
        "binding:vif_type": VIF_TYPE,
        "binding:vif_details": {"port_filter": False},
        "binding:profile": None,
    }


def neutron_subnet_dict(subnet: SubnetRecord) -> dict[str, Any]:
    """The subnet as Neutron's API shows it (the ``kuryr.org/neutron-subnet`` annotation)."""
    return {
        "id": subnet.id,
        "name": subnet.name,
        "network_id": subnet.network_id,
        "tenant_id": subnet.project_id,
        "cidr": subnet.cidr,
        "gateway_ip": subnet.gateway_ip,
        "ip_version": subnet.ip_version,
        "allocation_pools": [dict(p) for p in subnet.allocation_pools],
        "dns_nameservers": list(subnet.dns_nameservers),
        "host_routes": [dict(r) for r in subnet.host_routes],
        "enable_dhcp": subnet.enable_dhcp,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": subnet.subnetpool_id,
    }


def pod_annotations(port: PortRecord, subnet: SubnetRecord) -> dict[str, str]:
    """The three annotations the controller patches onto the pod (DESIGN.md, Network step 1)."""
    return {
        NEUTRON_PORT: json.dumps(neutron_port_dict(port), separators=(",", ":")),
        NEUTRON_SUBNET: json.dumps(neutron_subnet_dict(subnet), separators=(",", ":")),
        PORT_ID: port.id,
    }
