"""ClusterIP allocation for Services, from ClusterSpec.service_cidr.

Kubernetes assigns a ClusterIP while creating the Service, so the apiserver's create path calls
``allocate`` synchronously (through ``ControllerManager.allocate_service_ip``) and stores the
result in spec.clusterIP/clusterIPs. The range's first host address is reserved for the
``kubernetes`` service in ``default``. The services informer confirms allocations (and reserves
the addresses of services that existed before the controllers started) and releases an address
when its Service is deleted; an allocation whose Service never appears (the create failed after
allocation) is released by a one-shot check, as the apiserver's repair loop would.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.addresses import AddressPool
from bayport.cluster.controllers.informer import Informer, object_key
from bayport.cluster.errors import ApiError, invalid
from bayport.cluster.store import Store
from bayport.cluster.watch import DELETED

Obj = dict[str, Any]
UNCONFIRMED_GRACE = 10.0     # seconds an allocation may wait for its Service to be stored


def requested_ip(spec: Mapping[str, Any]) -> str | None:
    ip = spec.get("clusterIP") or next(iter(spec.get("clusterIPs") or ()), None)
    return str(ip) if ip else None


class ServiceIPAllocator:
    def __init__(self, store: Store, services: Informer, service_cidr: str) -> None:
        self.store = store
        self.pool = AddressPool(service_cidr, skip_first=1)
        network = ipaddress.IPv4Network(service_cidr, strict=False)
        self.kubernetes_ip = str(network.network_address + 1)
        self._owner: dict[str, str] = {}      # ip → service key
        self._ip_of: dict[str, str] = {}      # service key → ip
        services.add_handler(self._on_service)

    def allocate(self, service: Mapping[str, Any]) -> str | None:
        """The ClusterIP for a Service being created (None for headless / ExternalName);
        raises ApiError 422 for a requested address that is out of range or taken."""
        spec = service.get("spec") or {}
        meta = service.get("metadata") or {}
        name = str(meta.get("name") or meta.get("generateName") or "")
        key = f"{meta.get('namespace') or 'default'}/{name}"
        if spec.get("type") == "ExternalName":
            return None
        wanted = requested_ip(spec)
        if wanted == "None":
            return None
        if wanted is None and key == "default/kubernetes":
            wanted = self.kubernetes_ip
        if wanted is not None:
            self._claim(key, name, wanted)
            return wanted
        ip = self.pool.allocate()
        if ip is None:
            raise ApiError(500, "InternalError",
                           f"failed to allocate a serviceIP: range {self.pool.cidr} is full")
        self._take(key, ip)
        return ip

    def _claim(self, key: str, name: str, ip: str) -> None:
        owner = self._owner.get(ip)
        if owner == key:
            return
        try:
            in_range = ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(self.pool.cidr)
        except ValueError:
            in_range = False
        if not in_range:
            raise invalid("Service", name, [(
                "spec.clusterIPs[0]", f'Invalid value: "{ip}": failed to allocate IP {ip}: the provided '
                f"IP ({ip}) is not in the valid range. The range of valid IPs is {self.pool.cidr}")])
        if owner is not None or not self.pool.reserve(ip):
            raise invalid("Service", name, [(
                "spec.clusterIPs[0]", f'Invalid value: "{ip}": failed to allocate IP {ip}: '
                "provided IP is already allocated")])
        self._take(key, ip)

    def _take(self, key: str, ip: str) -> None:
        self._owner[ip] = key
        self._ip_of[key] = ip
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(UNCONFIRMED_GRACE, self._check_stored, key, ip)

    def _check_stored(self, key: str, ip: str) -> None:
        if self._owner.get(ip) != key:
            return
        namespace, _, name = key.partition("/")
        try:
            stored = self.store.get_snapshot("services", namespace, name)
        except ApiError:
            stored = None
        if stored is None or requested_ip(stored.get("spec") or {}) != ip:
            self._release(key, ip)

    def _release(self, key: str, ip: str) -> None:
        if self._owner.get(ip) == key:
            del self._owner[ip]
            self.pool.release(ip)
        if self._ip_of.get(key) == ip:
            del self._ip_of[key]

    def _on_service(self, kind: str, service: Obj, old: Obj | None) -> None:
        key = object_key(service)
        ip = requested_ip(service.get("spec") or {})
        if kind == DELETED:
            if ip:
                self._release(key, ip)
            return
        if not ip or ip == "None" or self._owner.get(ip) == key:
            return
        if self._owner.get(ip) is None and (self.pool.contains(ip) or ip == self.kubernetes_ip):
            self.pool.reserve(ip)
            self._owner[ip] = key
            self._ip_of[key] = ip

    def ip_of(self, key: str) -> str | None:
        return self._ip_of.get(key)
