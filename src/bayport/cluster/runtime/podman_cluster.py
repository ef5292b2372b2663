"""What one cluster's podman node runtimes share: object names and labels, the pod network, the
state directory, the cluster's API address, and the final sweep.

``runtime.podman`` builds one ``PodmanCluster`` per ClusterSpec (in ``podman_factory``) and hands
it to every node's ``PodmanRuntime``; when the last of them closes, ``sweep`` removes whatever
still carries the cluster's label — containers and pods of nodes that no longer exist, network
namespaces, the bridge, emptyDirs. The local driver calls ``announce_api_server`` once the
cluster serves, since the runtimes exist before the HTTP server has a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from pathlib import Path

from bayport.cluster.runtime import ownership, podman_volumes
from bayport.cluster.runtime.base import ContainerRuntimeError
from bayport.cluster.runtime.ownership import Owner
from bayport.cluster.runtime.podman_cli import CommandError, podman, podman_json
from bayport.cluster.runtime.podman_net import (
    PodNetwork,
    bridge_name,
    delete_bridge,
    delete_netns,
    list_netns,
    release_pool,
)
from bayport.cluster.spec import ClusterSpec

LABEL_CLUSTER = "bayport.cluster"
LABEL_NODE = "bayport.node"
LABEL_POD_UID = "bayport.pod-uid"
LABEL_POD_NAME = "bayport.pod-name"
LABEL_POD_NAMESPACE = "bayport.pod-namespace"
LABEL_POD_IP = "bayport.pod-ip"
LABEL_HOST_NETWORK = "bayport.host-network"
LABEL_VOLUMES = "bayport.volumes"
LABEL_CONTAINER = "bayport.container"
LABEL_ATTEMPT = "bayport.attempt"
LABEL_INIT = "bayport.init"
LABEL_IMAGE = "bayport.image"
LABEL_IMAGE_ID = "bayport.image-id"
_api_servers: dict[str, str] = {}


def slug(text: str, size: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:size].strip("-") or "x"


def announce_api_server(cluster_uid: str, url: str) -> None:
    """Tell the cluster's runtimes where its API listens (bayport-cni reads port annotations there).
    The host learns its URL only once serving, after the runtimes exist, hence a separate call."""
    _api_servers[cluster_uid] = url


class PodmanCluster:
    """What a cluster's node runtimes share: names, labels, network, state directory."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.uid = spec.uid
        self.prefix = f"bp-{slug(spec.uid, 8)}"
        self.host_path_allowed = spec.labels.get(podman_volumes.HOST_PATH_LABEL) == "allow"
        root = spec.data_dir / "podman" if spec.data_dir is not None else \
            Path(tempfile.gettempdir()) / f"bayport-podman-{slug(spec.uid, 36)}"
        self.state_dir = root
        # where the volume binder provisions claim directories (controllers.volumes.claim_dir)
        self.claim_root = spec.data_dir / "pv" if spec.data_dir is not None else None
        self.memory_dir = podman_volumes.memory_root(slug(spec.uid, 36))
        self.owner = (Owner(spec.owner_id, spec.owner_dir, spec.uid)
                      if spec.owner_id and spec.owner_dir is not None else None)
        self.network = PodNetwork(cluster_uid=spec.uid, bayport=spec.wait_for_port_annotation,
                                  pod_cidr=spec.pod_cidr, token=spec.token,
                                  port_wait_seconds=spec.port_wait_seconds,
                                  api_server=lambda: _api_servers.get(spec.uid), owner=self.owner)
        self.open_runtimes = 0

    def labels(self) -> dict[str, str]:
        """Labels of every podman object of this cluster: the cluster's, and its owner's."""
        return {LABEL_CLUSTER: self.uid, **(self.owner.labels() if self.owner is not None else {})}

    async def sweep(self) -> None:
        """Remove every object this cluster still has on the machine (its last node closed)."""
        await sweep_host(self.uid, self.network.pod_cidr)
        await asyncio.to_thread(podman_volumes.remove, self.state_dir, self.memory_dir)
        _api_servers.pop(self.uid, None)


async def sweep_host(cluster_uid: str, pod_cidr: str | None) -> None:
    """Remove what the cluster ``cluster_uid`` left on this host: podman pods and containers with
    its label, its network namespaces (by name, unless the ledger says another bay's), its bridge
    and its pod pool's route (``pod_cidr``; None: unknown, left alone). Also what a bay delete
    resumed by a process that never hosted the cluster (its host was killed) calls."""
    label = f"label={LABEL_CLUSTER}={cluster_uid}"
    with contextlib.suppress(CommandError, ValueError):
        pods = await podman_json("pod", "ps", "--filter", label, "--format", "json") or []
        names = [p["Name"] for p in pods]
        if names:
            await podman("pod", "rm", "-f", "-t", "0", *names)
        leftovers = await podman_json("ps", "-a", "--filter", label, "--format", "json") or []
        if leftovers:
            await podman("rm", "-f", "-t", "0", *[c["Id"] for c in leftovers])
    recorded = ownership.recorded("netns")
    for name in list_netns(f"bp-{slug(cluster_uid, 8)}-"):
        if name in recorded and recorded[name].bay != cluster_uid:
            continue
        with contextlib.suppress(ContainerRuntimeError):
            await delete_netns(name)
    with contextlib.suppress(CommandError):
        await delete_bridge(bridge_name(cluster_uid))
    if pod_cidr is not None:
        with contextlib.suppress(CommandError):
            await release_pool(pod_cidr)
    await asyncio.to_thread(podman_volumes.remove, podman_volumes.memory_root(slug(cluster_uid, 36)))
