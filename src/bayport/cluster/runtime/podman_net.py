"""A podman pod's network: a named network namespace the runtime creates, bound by a CNI plugin.

Every pod sandbox gets ``/run/netns/<sandbox name>`` (``ip netns add``) before any container
exists; its containers join it with ``podman create --network ns:<path>``. A namespace we own
needs no pause image (there is no catatonit here) and exists before the first container starts,
so the plugin binds the address before the application listens — kubelet's order.

Two bindings, one per cluster, chosen by ClusterSpec.wait_for_port_annotation:

* ``bayport``: the ``bayport-cni`` executable (CNI 1.0.0; the cluster package must not import
  ``bayport.network``) reads the pod's ``kuryr.org/neutron-port`` annotation from the cluster's
  API and gives the namespace exactly that IP and MAC, on the cluster's bridge with the subnet's
  gateway on the bridge (``isGateway``), so the host reaches pod IPs.
* ``bridge``: without Bayport's pod network, the standard CNI ``bridge`` plugin with ``static``
  IPAM binds the address the node agent picked from the node's pod CIDR (gateway .1 of the
  node's /24 on the same per-cluster bridge), plus ``loopback``.

Each cluster has its own bridge ``bpb<hash>``, deleted when the cluster's last node runtime
closes, and its own pod pool (a /16 the conductor chose so that no other bay or host route has
it, ``network.ipam.pod_pools``), which ``claim_pool`` marks on the host with a lowest-priority
route while the cluster exists. Bridge, route and namespaces carry their owner (``ownership``:
the bridge's alias, the host ledger). ``runtime.podman`` calls ``attach``/``detach`` from sandbox
setup/teardown.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayport.cluster.runtime import ownership
from bayport.cluster.runtime.base import ContainerRuntimeError
from bayport.cluster.runtime.ownership import Owner
from bayport.cluster.runtime.podman_cli import CommandError, host_env, run

NETNS_DIR = Path("/run/netns")
CNI_VERSION = "1.0.0"
IFNAME = "eth0"
SANDBOX_ERROR = "CreatePodSandboxError"
STANDARD_CNI_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"), Path("/usr/libexec/cni"))
STANDARD_PLUGINS = ("bridge", "static", "loopback")


def bayport_cni_path() -> Path | None:
    """The ``bayport-cni`` executable next to this Python (the venv's bin), else on PATH."""
    sibling = Path(sys.executable).parent / "bayport-cni"
    if sibling.exists():
        return sibling
    found = shutil.which("bayport-cni")
    return Path(found) if found else None


def standard_cni_dir() -> Path | None:
    for directory in STANDARD_CNI_DIRS:
        if all((directory / plugin).exists() for plugin in STANDARD_PLUGINS):
            return directory
    return None


def bridge_name(cluster_uid: str) -> str:
    """``bpb`` + 10 hex digits of the cluster uid: unique per cluster, within IFNAMSIZ."""
    return "bpb" + hashlib.sha256(cluster_uid.encode()).hexdigest()[:10]


def netns_path(name: str) -> str:
    return str(NETNS_DIR / name)


async def create_netns(name: str, owner: Owner | None = None) -> str:
    """``/run/netns/<name>``; its owner goes to the host ledger first, so no namespace of ours
    exists unlabelled (a crash in between leaves a record without a namespace, which is harmless)."""
    if owner is not None:
        ownership.record("netns", name, owner)
    try:
        await run(["ip", "netns", "add", name], env=host_env(), timeout=30)
    except CommandError as exc:
        if "exists" not in exc.message.lower():
            raise ContainerRuntimeError(SANDBOX_ERROR,
                                        f"creating network namespace {name}: {exc.message}") from exc
    return netns_path(name)


async def delete_netns(name: str) -> None:
    if not os.path.exists(netns_path(name)):
        ownership.forget("netns", name)
        return
    try:
        await run(["ip", "netns", "delete", name], env=host_env(), timeout=30)
    except CommandError as exc:
        if os.path.exists(netns_path(name)):
            raise ContainerRuntimeError("KillPodSandboxError",
                                        f"deleting network namespace {name}: {exc.message}") from exc
    ownership.forget("netns", name)


def list_netns(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


async def delete_bridge(name: str) -> None:
    if os.path.exists(f"/sys/class/net/{name}"):
        try:
            await run(["ip", "link", "delete", name, "type", "bridge"], env=host_env(), timeout=30)
        except CommandError:
            if os.path.exists(f"/sys/class/net/{name}"):
                raise
    ownership.forget("bridge", name)


def bridge_alias(name: str) -> str:
    """The interface alias (IFLA_IFALIAS) of ``name``, "" when it has none or does not exist."""
    try:
        return Path(f"/sys/class/net/{name}/ifalias").read_text().strip()
    except OSError:
        return ""


async def ensure_bridge(name: str, owner: Owner | None) -> None:
    """The bridge exists, is up and carries its owner as its alias, before any CNI ADD: the
    plugins (bayport-cni, the standard bridge plugin) take an existing bridge as it is, so no
    bridge of ours is ever unlabelled. An existing one (adopted, or made by an older version)
    gets the alias too."""
    if not os.path.exists(f"/sys/class/net/{name}"):
        try:
            await run(["ip", "link", "add", "name", name, "type", "bridge"], env=host_env(), timeout=30)
        except CommandError as exc:
            if "exists" not in exc.message.lower():
                raise
    if owner is not None:
        ownership.record("bridge", name, owner)
        alias = owner.alias()[:ownership.ALIAS_MAX]
        if bridge_alias(name) != alias:
            await run(["ip", "link", "set", "dev", name, "alias", alias], env=host_env(), timeout=30)
    await run(["ip", "link", "set", "dev", name, "up"], env=host_env(), timeout=30)


CLAIM_METRIC = 4_294_967_295          # the last route the kernel would pick


async def release_pool(pod_cidr: str) -> None:
    """Remove a pod pool's claim route (absent already is fine) and its ledger record."""
    try:
        await run(["ip", "route", "del", "unreachable", pod_cidr, "metric", str(CLAIM_METRIC)],
                  env=host_env(), timeout=30)
    except CommandError as exc:
        if "No such process" not in exc.message and "not found" not in exc.message.lower():
            raise
    ownership.forget("route", pod_cidr)


@dataclass(frozen=True, slots=True)
class PodIdentity:
    """What CNI_ARGS and the static binding need to know about the pod."""

    sandbox: str
    namespace: str
    name: str
    uid: str
    ip: str | None


@dataclass
class PodNetwork:
    """One cluster's pod network settings, shared by its node runtimes."""

    cluster_uid: str
    bayport: bool                      # bind by bayport-cni (port annotations) or by bridge+static
    pod_cidr: str
    token: str
    port_wait_seconds: float
    api_server: Callable[[], str | None]
    owner: Owner | None = None         # who the bridge, the route and the netns belong to
    # A plugin run is a process start (bayport-cni: a Python interpreter): a burst of 50 pods on a
    # 2-core machine would otherwise run 50 at once and finish them all together, late.
    parallel: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    _limit: asyncio.Semaphore | None = field(default=None, init=False, repr=False)

    @property
    def bridge(self) -> str:
        return bridge_name(self.cluster_uid)

    @property
    def network_name(self) -> str:
        return f"bayport-{self.bridge}"

    # --- configuration --------------------------------------------------------------------------

    def _bayport_conf(self) -> dict[str, Any]:
        server = self.api_server()
        if not server:
            raise ContainerRuntimeError(SANDBOX_ERROR, "the cluster's API address is not known yet, so "
                                        "bayport-cni cannot read the pod's port annotation")
        return {"cniVersion": CNI_VERSION, "name": self.network_name, "type": "bayport-cni",
                "apiServer": server, "token": self.token, "bridge": self.bridge, "isGateway": True,
                "portWaitSeconds": self.port_wait_seconds}

    def _static_conf(self, ip: str) -> dict[str, Any]:
        pods = ipaddress.IPv4Network(self.pod_cidr, strict=False)
        address = ipaddress.IPv4Address(ip)
        subnet = (ipaddress.IPv4Network(f"{address}/24", strict=False)
                  if pods.prefixlen <= 24 and address in pods else pods)
        gateway = subnet.network_address + 1
        return {"cniVersion": CNI_VERSION, "name": self.network_name, "type": "bridge",
                "bridge": self.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "static", "routes": [{"dst": "0.0.0.0/0", "gw": str(gateway)}],
                         "addresses": [{"address": f"{address}/{subnet.prefixlen}",
                                        "gateway": str(gateway)}]}}

    # --- the pod pool on the host ------------------------------------------------------------------

    async def claim_pool(self) -> None:
        """Route the whole pod pool as unreachable, at the lowest priority: the pool is taken on
        this host before its first /24 has a bridge (another server choosing a pool sees it,
        network.ipam.pod_pools), and the host answers "unreachable" for pods that do not exist
        instead of sending their traffic to the default gateway. Bridges' /24s are more specific."""
        if self.owner is not None:
            ownership.record("route", self.pod_cidr, self.owner)
        await run(["ip", "route", "replace", "unreachable", self.pod_cidr, "metric", str(CLAIM_METRIC)],
                  env=host_env(), timeout=30)
        await ensure_bridge(self.bridge, self.owner)

    async def release_pool(self) -> None:
        await release_pool(self.pod_cidr)

    # --- CNI calls -----------------------------------------------------------------------------------

    async def attach(self, pod: PodIdentity, netns: str) -> str:
        """CNI ADD on the pod's namespace; returns the address the plugin bound."""
        if self.bayport:
            plugin = bayport_cni_path()
            if plugin is None:
                raise ContainerRuntimeError(SANDBOX_ERROR, "the bayport-cni executable is not installed")
            result = await self._call(plugin, "ADD", self._bayport_conf(), pod, netns)
        else:
            if pod.ip is None:
                raise ContainerRuntimeError(SANDBOX_ERROR, "the node assigned the pod no address")
            directory = standard_cni_dir()
            if directory is None:
                raise ContainerRuntimeError(SANDBOX_ERROR, "the standard CNI plugins (bridge, static, "
                                            "loopback) are not installed (containernetworking-plugins)")
            await self._call(directory / "loopback", "ADD",
                             {"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"}, pod, netns)
            result = await self._call(directory / "bridge", "ADD", self._static_conf(pod.ip), pod, netns)
        try:
            bound = str(ipaddress.ip_interface(result["ips"][0]["address"]).ip)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ContainerRuntimeError(SANDBOX_ERROR, f"CNI ADD gave no address: {result!r}") from exc
        if pod.ip is not None and bound != pod.ip:
            raise ContainerRuntimeError(SANDBOX_ERROR,
                                        f"CNI bound {bound}, but the pod's address is {pod.ip}")
        return bound

    async def detach(self, pod: PodIdentity, netns: str) -> None:
        """CNI DEL (idempotent; the namespace may already be gone)."""
        if self.bayport:
            plugin = bayport_cni_path()
            if plugin is not None and self.api_server():
                await self._call(plugin, "DEL", self._bayport_conf(), pod, netns)
        elif pod.ip is not None and (directory := standard_cni_dir()) is not None:
            await self._call(directory / "bridge", "DEL", self._static_conf(pod.ip), pod, netns)

    async def _call(self, plugin: Path, command: str, conf: dict[str, Any], pod: PodIdentity,
                    netns: str) -> dict[str, Any]:
        args = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
                f"K8S_POD_INFRA_CONTAINER_ID={pod.sandbox};K8S_POD_UID={pod.uid}")
        env = host_env(CNI_COMMAND=command, CNI_CONTAINERID=pod.sandbox, CNI_NETNS=netns,
                       CNI_IFNAME=IFNAME, CNI_ARGS=args, CNI_PATH=str(plugin.parent))
        timeout = self.port_wait_seconds + 30
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.parallel)
        try:
            async with self._limit:
                out = await run([str(plugin)], stdin=json.dumps(conf).encode(), env=env, timeout=timeout)
        except CommandError as exc:
            raise ContainerRuntimeError(SANDBOX_ERROR if command == "ADD" else "KillPodSandboxError",
                                        f"CNI {command} ({plugin.name}) failed: {_cni_error(exc)}") from exc
        text = out.strip()
        if not text:
            return {}
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContainerRuntimeError(SANDBOX_ERROR,
                                        f"CNI {command} ({plugin.name}) printed no JSON") from exc
        return doc if isinstance(doc, dict) else {}


def _cni_error(exc: CommandError) -> str:
    """The plugin's CNI error object (msg: details) from stdout, else its stderr."""
    try:
        doc = json.loads(exc.stdout)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return exc.message
    if not isinstance(doc, dict) or "msg" not in doc:
        return exc.message
    details = f": {doc['details']}" if doc.get("details") else ""
    return f"{doc['msg']}{details} (CNI code {doc.get('code')})"
