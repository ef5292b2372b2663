"""One embedded cluster's lifecycle: store, Node objects, controllers and the HTTP API server.

``bayport.drivers.local`` creates an ``EmbeddedCluster`` per bay, ``start()``s it (namespaces,
master and worker Nodes, the ``kubernetes`` Service, the ControllerManager, then uvicorn on a
loopback port in the caller's event loop), ``resize()``s it and ``stop()``s it. Everything else
reaches the cluster over HTTP at ``url`` with a bearer token: ``spec.token`` (admin),
``spec.reader_token`` (read-only) or ``spec.network_token`` (the pod-network controller's).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import platform
import re
import socket
import uuid
from pathlib import Path
from typing import Any

from bayport.cluster.controllers import ControllerManager
from bayport.cluster.errors import ApiError
from bayport.cluster.group_commit import GroupCommit
from bayport.cluster.http import ApiApp, ApiContext
from bayport.cluster.http.server import ApiServer
from bayport.cluster.journal import Journal, ObjectJournal
from bayport.cluster.journal_pg import PgJournal
from bayport.cluster.pod_network_admission import check as check_pod_network
from bayport.cluster.spec import ClusterSpec
from bayport.cluster.store import Store, now_iso
from bayport.cluster.tls import ServingIdentity, serving_identity

__all__ = ["ClusterSpec", "EmbeddedCluster"]

log = logging.getLogger(__name__)
JOURNAL_FILE = "objects.sqlite"
ENDPOINT_FILE = "endpoint.json"      # the ports it served on, taken again after a restart

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
_NODE_CAPACITY = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"}


def _dns_name(text: str) -> str:
    """The node-name prefix: node names are hostnames, and hostname labels end at 63."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:40].rstrip("-") or "bay"


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class EmbeddedCluster:
    """A Kubernetes-API-compatible cluster living inside this process (see CLUSTER_CONTRACT.md)."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.url = ""
        self.https_url = ""
        self._prefix = _dns_name(spec.name)
        self._ctx = ApiContext(Store(), version=spec.version)
        self.app = ApiApp(self._ctx, spec.token, reader_token=spec.reader_token,
                          network_token=spec.network_token)
        self._server = ApiServer(self.app)
        self._tls_server = ApiServer(self.app)
        self.restored = 0                # objects read back from the journal at the last start
        self._fresh_state()

    def _fresh_state(self) -> None:
        """A new, empty store and controllers wired to it (at construction and after ``stop``)."""
        self.store = Store()
        self.store.pod_security = self.spec.pod_security
        self.store.admission.append(self._assign_cluster_ip)
        self.store.write_admission.append(check_pod_network)
        self.controllers = ControllerManager(self.store, self.spec)
        self._ctx.store = self.store
        self._ctx.logs = self.controllers
        self._workers = 0

    # --- addresses ------------------------------------------------------------------------------------

    def _node_ip(self, index: int) -> str:
        net = ipaddress.ip_network(self.spec.node_cidr, strict=False)
        return str(net.network_address + index + 10)

    def _pod_cidr(self, index: int) -> str:
        net = ipaddress.ip_network(self.spec.pod_cidr, strict=False)
        if net.prefixlen > 24:
            return str(net)
        subnets = net.subnets(new_prefix=24)
        for i, subnet in enumerate(subnets):
            if i == index:
                return str(subnet)
        raise ValueError(f"pod_cidr {self.spec.pod_cidr} has no /24 number {index}")

    def master_addresses(self) -> list[str]:
        return [self._node_ip(i) for i in range(self.spec.master_count)]

    def node_addresses(self) -> list[str]:
        return [self._node_ip(self.spec.master_count + i) for i in range(self._workers)]

    def master_names(self) -> list[str]:
        return [f"{self._prefix}-master-{i}" for i in range(self.spec.master_count)]

    def node_names(self) -> list[str]:
        return [f"{self._prefix}-node-{i}" for i in range(self._workers)]

    # --- objects --------------------------------------------------------------------------------------

    def _node_object(self, name: str, index: int, master: bool) -> dict[str, Any]:
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": _arch(), "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": _arch(), "bayport.io/runtime": self.spec.runtime}
        spec: dict[str, Any] = {"podCIDR": self._pod_cidr(index), "podCIDRs": [self._pod_cidr(index)]}
        if master:
            labels[CONTROL_PLANE_ROLE] = ""
            spec["taints"] = [{"key": CONTROL_PLANE_ROLE, "effect": "NoSchedule"}]
        now = now_iso()

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {"type": kind, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": now,
                    "reason": reason, "message": message}

        return {
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": spec,
            "status": {
                "capacity": dict(_NODE_CAPACITY),
                "allocatable": dict(_NODE_CAPACITY),
                "conditions": [
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                              "kubelet has sufficient memory available"),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                              "kubelet has no disk pressure"),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID",
                              "kubelet has sufficient PID available"),
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [{"type": "InternalIP", "address": self._node_ip(index)},
                              {"type": "Hostname", "address": name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.spec.uid}/{name}").hex,
                    "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.spec.uid}/{name}")),
                    "bootID": str(uuid.uuid4()),
                    "kernelVersion": platform.release(),
                    "osImage": "Bayport embedded node",
                    "containerRuntimeVersion": f"{self.spec.runtime}://1.0.0",
                    "kubeletVersion": self.spec.version,
                    "kubeProxyVersion": self.spec.version,
                    "operatingSystem": "linux",
                    "architecture": _arch(),
                },
            },
        }

    def _create_node(self, name: str, index: int, master: bool) -> None:
        self.store.create_owned("nodes", self._node_object(name, index, master))

    def _assign_cluster_ip(self, plural: str, obj: dict[str, Any]) -> None:
        """Admission for Service creates: the controllers' allocator decides the ClusterIP (and
        claims a requested one), so the create response already carries it."""
        if plural != "services":
            return
        ip = self.controllers.allocate_service_ip(obj)
        if ip:
            spec = obj.setdefault("spec", {})
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]

    def _seed(self) -> None:
        for ns in SYSTEM_NAMESPACES:
            self.store.create("namespaces", {"metadata": {"name": ns}})
        for i, name in enumerate(self.master_names()):
            self._create_node(name, i, master=True)
        self._add_workers(self.spec.node_count)
        first = ipaddress.ip_network(self.spec.service_cidr, strict=False).network_address + 1
        self.store.create("services", {
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": str(first), "ports": [{"name": "https", "port": 443,
                                                         "protocol": "TCP", "targetPort": 6443}]}})
        self.store.create("endpoints", {
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip} for ip in self.master_addresses()],
                         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]})

    def _add_workers(self, count: int) -> None:
        while self._workers < count:
            index = self.spec.master_count + self._workers
            self._create_node(f"{self._prefix}-node-{self._workers}", index, master=False)
            self._workers += 1

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Restore the cluster from its journal (or seed a new one), start the controllers and serve
        the API on the ports it had before when they are free; returns the URL."""
        if self._server.running:
            return self.url
        await self._open_state()
        await self.controllers.start()
        previous = self._previous_ports()
        try:
            self.url = await self._serve(self._server, host, port or previous.get("http", 0), None)
            identity = self.identity()
            if identity is not None:
                self.https_url = await self._serve(self._tls_server, host, previous.get("https", 0),
                                                   identity)
        except BaseException:
            await self._server.stop()
            await self.controllers.stop()
            await self._close_journal()
            raise
        self._ctx.server_address = self.url.removeprefix("http://")
        self._save_ports()
        return self.url

    async def _serve(self, server: ApiServer, host: str, port: int, identity: ServingIdentity | None) -> str:
        """Serve on ``port`` when it is free (uvicorn exits the process on a failed bind, so ask
        first), else on a new one, and say so: kubeconfigs handed out earlier name the old one."""
        context = identity.context if identity is not None else None
        if port:
            try:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((host, port))
            except OSError as exc:
                log.warning("cluster %s: port %d is taken (%s); serving on a new one", self.spec.uid,
                            port, exc)
                port = 0
        return await server.start(host, port, ssl_context=context)

    # --- durable state ----------------------------------------------------------------------------------

    async def _open_state(self) -> None:
        """Attach the journal: read back what it holds, or seed a new cluster into it."""
        if self.spec.data_dir is None:
            self._seed()
            return
        journal: Journal
        if self.spec.store_url:
            journal = PgJournal(self.spec.store_url, self.spec.uid, sync=self.spec.store_sync)
        else:
            journal = ObjectJournal(self.spec.data_dir / JOURNAL_FILE, sync=self.spec.store_sync)
        # Off the loop: connecting to PostgreSQL may wait for seconds, and every other bay of
        # this process is served by the same loop.
        await asyncio.to_thread(journal.open)
        if journal.count() == 0:
            self.store.journal = journal
            with journal.batch():
                self._seed()
        else:
            self.restored = self.store.restore(journal)
        self.store.group = GroupCommit(journal, self.store.publish, self.store.revert)
        self.store.group.start()
        if not self.restored:
            return
        workers = {n["metadata"]["name"] for n in self.store.list_snapshots("nodes")[0]}
        self._workers = 0
        while f"{self._prefix}-node-{self._workers}" in workers:
            self._workers += 1
        log.info("cluster %s: %d objects restored at resourceVersion %d", self.spec.uid, self.restored,
                 self.store.resource_version)

    async def _close_journal(self) -> None:
        """Write what the group commit holds (nothing applied is lost on a graceful stop), then
        close the journal."""
        group, self.store.group = self.store.group, None
        if group is not None:
            await group.stop()
        if self.store.journal is not None:
            self.store.journal.close()
            self.store.journal = None

    def _tls_dir(self) -> Path | None:
        return self.spec.data_dir / "tls" if self.spec.data_dir is not None else None

    def identity(self) -> ServingIdentity | None:
        """The certificate the HTTPS listener serves (kubeconfigs pin it as their CA)."""
        return serving_identity(self._tls_dir())

    def _previous_ports(self) -> dict[str, int]:
        if self.spec.data_dir is None:
            return {}
        with contextlib.suppress(OSError, ValueError, TypeError):
            saved = json.loads((self.spec.data_dir / ENDPOINT_FILE).read_text())
            return {k: int(v) for k, v in saved.items() if k in ("http", "https")}
        return {}

    def _save_ports(self) -> None:
        if self.spec.data_dir is None:
            return
        ports = {"http": int(self.url.rsplit(":", 1)[1])}
        if self.https_url:
            ports["https"] = int(self.https_url.rsplit(":", 1)[1])
        (self.spec.data_dir / ENDPOINT_FILE).write_text(json.dumps(ports))

    def kubeconfig(self, name: str | None = None, *, reader: bool = False) -> str:
        """A kubeconfig for kubectl: the HTTPS listener (client-go sends tokens only over TLS),
        its pinned certificate and the admin token (``reader``: the read-only one). Plain HTTP
        when TLS is unavailable."""
        context = name or self._prefix
        token = self.spec.reader_token if reader else self.spec.token
        if token is None:
            raise ValueError(f"cluster {self.spec.uid} has no read-only token")
        user = f"{context}-{'reader' if reader else 'admin'}"
        identity = self.identity()
        if self.https_url and identity is not None:
            cluster: dict[str, str] = {"server": self.https_url,
                                       "certificate-authority-data": identity.ca_data}
        else:
            cluster = {"server": self.url}
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": user,
                                                        "namespace": "default"}}],
            "current-context": context,
        }
        return json.dumps(config, indent=2)

    async def resize(self, node_count: int) -> list[str]:
        """Add or remove worker Nodes (highest index first); pods bound to removed nodes go too."""
        if node_count < 0:
            raise ValueError("node_count must be >= 0")
        self._add_workers(node_count)
        while self._workers > node_count:
            self._workers -= 1
            name = f"{self._prefix}-node-{self._workers}"
            pods, _ = self.store.list_snapshots("pods", field_selector=f"spec.nodeName={name}")
            for pod in pods:
                meta = pod["metadata"]
                try:
                    self.store.delete_snapshot("pods", meta["namespace"], meta["name"],
                                               grace_period_seconds=0)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            try:
                self.store.delete_snapshot("nodes", None, name)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        self.spec.node_count = node_count
        await self.store.durable()      # the caller reports the resize done: it must be kept
        return self.node_addresses()

    async def stop(self, *, keep: bool = False) -> None:
        """Stop serving (the ports are free when this returns) and the controllers. ``keep`` is a
        shutdown: the journal stays and the runtimes' containers keep running for the next start
        to adopt. Otherwise (the bay is deleted) the containers go and so does the journal."""
        await self._server.stop()
        await self._tls_server.stop()
        self.https_url = ""
        await self.controllers.stop(keep_runtime=keep)
        journal = self.store.journal
        await self._close_journal()
        if journal is not None and not keep:
            journal.destroy()
            if self.spec.data_dir is not None:
                with contextlib.suppress(FileNotFoundError):
                    (self.spec.data_dir / ENDPOINT_FILE).unlink()
        self._fresh_state()
        self.url = ""
