"""Helpers for the controller tests: a Store seeded like a small cluster, a running
ControllerManager on it, and waiting for a condition on stored objects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bayport.cluster.controllers import ControllerManager
from bayport.cluster.errors import ApiError
from bayport.cluster.runtime import RuntimeFactory
from bayport.cluster.spec import ClusterSpec
from bayport.cluster.store import Store

Obj = dict[str, Any]
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def node_object(name: str, index: int, *, master: bool = False, ready: bool = True,
                labels: dict[str, str] | None = None, pods: str = "110") -> Obj:
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}
    spec: Obj = {"podCIDR": f"10.100.{index}.0/24", "podCIDRs": [f"10.100.{index}.0/24"]}
    if master:
        all_labels[CONTROL_PLANE] = ""
        spec["taints"] = [{"key": CONTROL_PLANE, "effect": "NoSchedule"}]
    return {
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": pods},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": pods},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [{"type": "InternalIP", "address": f"10.0.0.{index + 10}"},
                          {"type": "Hostname", "address": name}],
        },
    }


def seed(store: Store, *, masters: int = 1, nodes: int = 2) -> None:
    for ns in ("default", "kube-system"):
        store.create("namespaces", {"metadata": {"name": ns}})
    for i in range(masters):
        store.create("nodes", node_object(f"t-master-{i}", i, master=True))
    for i in range(nodes):
        store.create("nodes", node_object(f"t-node-{i}", masters + i))


@dataclass
class Harness:
    store: Store
    manager: ControllerManager
    spec: ClusterSpec

    async def wait_for(self, check: Callable[[], Any], *, timeout: float = 5.0, what: str = "") -> Any:
        """Poll ``check`` until it returns something truthy (ApiError counts as not yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = check()
            except ApiError:
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or check}")
            await asyncio.sleep(0.005)

    def pod(self, name: str, namespace: str = "default") -> Obj:
        return self.store.get("pods", namespace, name)

    async def running(self, name: str, namespace: str = "default", timeout: float = 5.0) -> Obj:
        def check() -> Obj | None:
            pod = self.pod(name, namespace)
            return pod if pod["status"].get("phase") == "Running" else None
        result: Obj = await self.wait_for(check, timeout=timeout, what=f"pod {name} Running")
        return result

    def events(self, namespace: str = "default", *, reason: str | None = None,
               name: str | None = None) -> list[Obj]:
        items, _ = self.store.list("events", namespace)
        return [e for e in items if (reason is None or e["reason"] == reason)
                and (name is None or e["involvedObject"]["name"] == name)]


def pod_body(name: str, *, image: str = "nginx:1.25", annotations: dict[str, str] | None = None,
             labels: dict[str, str] | None = None, restart_policy: str | None = None,
             containers: int = 1, **spec: Any) -> Obj:
    body: Obj = {
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"containers": [{"name": "main" if i == 0 else f"side{i}", "image": image}
                                for i in range(containers)], **spec},
    }
    if annotations:
        body["metadata"]["annotations"] = annotations
    if restart_policy:
        body["spec"]["restartPolicy"] = restart_policy
    return body


@asynccontextmanager
async def running_cluster(*, masters: int = 1, nodes: int = 2, runtime_factory: RuntimeFactory | None = None,
                          event_ttl: float = 3600.0, **spec_fields: Any) -> AsyncIterator[Harness]:
    store = Store()
    spec = ClusterSpec(name="t", uid="t-uid", token="t-token", master_count=masters, node_count=nodes,
                       **spec_fields)
    seed(store, masters=masters, nodes=nodes)
    manager = ControllerManager(store, spec, runtime_factory=runtime_factory, event_ttl=event_ttl)

    def assign_cluster_ip(plural: str, obj: Obj) -> None:
        if plural == "services":
            ip = manager.allocate_service_ip(obj)
            if ip:
                obj["spec"]["clusterIP"] = ip
                obj["spec"]["clusterIPs"] = [ip]

    store.admission.append(assign_cluster_ip)
    await manager.start()
    try:
        yield Harness(store, manager, spec)
    finally:
        await manager.stop()
