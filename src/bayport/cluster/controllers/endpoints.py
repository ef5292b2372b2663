"""The endpoints controller: one Endpoints object per Service with a selector.

Each Service's member pods (same namespace, labels matching spec.selector) are tracked
incrementally from the pods informer, so a pod event costs O(services in its namespace) and a
sync costs O(members), never O(all pods). Members with an IP are listed under ``addresses`` when
Ready and ``notReadyAddresses`` otherwise (all as ready with publishNotReadyAddresses); terminal
pods are left out. Ports come from the Service, targetPort resolved per pod (named ports looked up
in its containers), and pods are grouped into subsets by their resolved ports. Services without a
selector (like ``kubernetes``) keep whatever Endpoints someone else writes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.informer import Informer, object_key, split_key
from bayport.cluster.controllers.ownership import is_ready, is_terminal, labels_of, pod_ip, selector_matches
from bayport.cluster.controllers.workqueue import WorkQueue
from bayport.cluster.errors import ApiError
from bayport.cluster.store import Store
from bayport.cluster.watch import DELETED

Obj = dict[str, Any]
NAMESPACE_INDEX = "namespace"
_PortKey = tuple[tuple[str, int, str], ...]


def _member_summary(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    return (pod_ip(pod), is_ready(pod), is_terminal(pod), (pod.get("spec") or {}).get("nodeName"))


def resolve_ports(service_ports: list[Mapping[str, Any]], pod: Mapping[str, Any]) -> _PortKey | None:
    """(name, port, protocol) per service port with targetPort resolved against ``pod``; None if a
    named targetPort is missing from the pod."""
    out: list[tuple[str, int, str]] = []
    for sp in service_ports:
        target = sp.get("targetPort", sp.get("port"))
        protocol = str(sp.get("protocol") or "TCP")
        if isinstance(target, str) and not target.isdigit():
            number = None
            for container in (pod.get("spec") or {}).get("containers") or ():
                for cp in container.get("ports") or ():
                    if cp.get("name") == target and (cp.get("protocol") or "TCP") == protocol:
                        number = int(cp["containerPort"])
            if number is None:
                return None
            port = number
        else:
            port = int(target or 0)
        out.append((str(sp.get("name") or ""), port, protocol))
    return tuple(out)


class EndpointsController:
    def __init__(self, store: Store, services: Informer, pods: Informer) -> None:
        self.store = store
        self.services = services
        self.pods = pods
        self.queue = WorkQueue("endpoints", self.reconcile)
        self._selectors: dict[str, Mapping[str, str]] = {}     # service key → selector
        self._by_namespace: dict[str, dict[str, None]] = {}     # namespace → service keys
        self._members: dict[str, dict[str, None]] = {}          # service key → pod keys
        services.add_handler(self._on_service)
        pods.add_handler(self._on_pod)

    def _on_service(self, kind: str, service: Obj, old: Obj | None) -> None:
        key = object_key(service)
        namespace = service["metadata"].get("namespace") or "default"
        selector = (service.get("spec") or {}).get("selector") or {}
        if kind == DELETED or not selector:
            if key in self._selectors:
                del self._selectors[key]
                self._members.pop(key, None)
                bucket = self._by_namespace.get(namespace)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del self._by_namespace[namespace]
            if kind == DELETED:
                self.queue.forget(key)
                self._drop_endpoints(key, service)
            return
        if self._selectors.get(key) != selector:
            self._selectors[key] = dict(selector)
            self._by_namespace.setdefault(namespace, {})[key] = None
            self._members[key] = {object_key(p): None for p in self.pods.by_index(NAMESPACE_INDEX, namespace)
                                  if selector_matches(selector, labels_of(p))}
        self.queue.add(key)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        namespace = pod["metadata"].get("namespace") or "default"
        services = self._by_namespace.get(namespace)
        if not services:
            return
        pod_key = object_key(pod)
        labels = labels_of(pod)
        changed = kind == DELETED or old is None or _member_summary(old) != _member_summary(pod) or \
            labels_of(old) != labels
        for key in services:
            members = self._members[key]
            match = kind != DELETED and selector_matches(self._selectors[key], labels)
            was = pod_key in members
            if match and not was:
                members[pod_key] = None
                self.queue.add(key)
            elif was and not match:
                del members[pod_key]
                self.queue.add(key)
            elif was and changed:
                self.queue.add(key)

    def reconcile(self, key: str) -> None:
        service = self.services.get(key)
        if service is None or key not in self._selectors:
            return
        namespace, name = split_key(key)
        spec = service.get("spec") or {}
        ports: list[Mapping[str, Any]] = list(spec.get("ports") or ())
        publish_all = bool(spec.get("publishNotReadyAddresses"))
        groups: dict[_PortKey, tuple[list[Obj], list[Obj]]] = {}
        for pod_key in self._members.get(key, ()):
            pod = self.pods.get(pod_key)
            if pod is None or is_terminal(pod) or not pod_ip(pod):
                continue
            resolved = resolve_ports(ports, pod)
            if resolved is None:
                continue
            meta = pod["metadata"]
            address: Obj = {"ip": pod_ip(pod),
                            "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"),
                                          "name": meta["name"], "uid": meta["uid"]}}
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                address["nodeName"] = node
            ready, not_ready = groups.setdefault(resolved, ([], []))
            (ready if publish_all or is_ready(pod) else not_ready).append(address)
        subsets: list[Obj] = []
        for resolved, (ready, not_ready) in sorted(groups.items()):
            subset: Obj = {}
            if ready:
                subset["addresses"] = sorted(ready, key=_ip_order)
            if not_ready:
                subset["notReadyAddresses"] = sorted(not_ready, key=_ip_order)
            if resolved:
                subset["ports"] = [{**({"name": n} if n else {}), "port": p, "protocol": proto}
                                   for n, p, proto in resolved]
            subsets.append(subset)
        self._write(namespace, name, service, subsets)

    def _write(self, namespace: str | None, name: str, service: Obj, subsets: list[Obj]) -> None:
        labels = dict(labels_of(service))
        try:
            current = self.store.get_snapshot("endpoints", namespace, name)
        except ApiError:
            body: Obj = {"metadata": {"name": name, "namespace": namespace, "labels": labels},
                         "subsets": subsets}
            self.store.create_owned("endpoints", body)
            return
        if (current.get("subsets") or []) == subsets and labels_of(current) == labels:
            return

        def write(obj: Obj) -> None:
            obj["subsets"] = subsets
            obj["metadata"]["labels"] = labels

        self.store.mutate("endpoints", namespace, name, write)

    def _drop_endpoints(self, key: str, service: Obj) -> None:
        if not (service.get("spec") or {}).get("selector"):
            return
        namespace, name = split_key(key)
        try:
            self.store.delete_snapshot("endpoints", namespace, name)
        except ApiError:
            return


def _ip_order(address: Mapping[str, Any]) -> int:
    return int(ipaddress.ip_address(address["ip"]))
