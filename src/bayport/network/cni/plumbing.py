"""The kernel side of ``bayport-cni``: a veth pair from the host (optionally on a
bridge) into the pod's network namespace, carrying the port's MAC and address.

The pod end is created directly inside the namespace under its final name, so no
temporary name ever appears on the host; the host end's name is derived from the
container id and interface name, which makes ADD retryable and DEL idempotent
without any state on disk. ``commands`` calls ``attach``, ``detach`` and ``verify``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pyroute2 import AsyncIPRoute, NetlinkError

from bayport.network.cni.binding import PortBinding
from bayport.network.cni.spec import CNIError, Code

HOST_PREFIX = "bp"


def host_ifname(container_id: str, ifname: str) -> str:
    """``bp`` + 11 hex digits: stable per (container, interface), 13 characters."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return HOST_PREFIX + digest[:11]


@dataclass(frozen=True, slots=True)
class Attached:
    bridge: str | None
    bridge_mac: str | None
    host_ifname: str
    host_mac: str


@asynccontextmanager
async def _netns(path: str) -> AsyncIterator[tuple[AsyncIPRoute, int]]:
    """Netlink inside the namespace at ``path`` and an fd of it. Opened by fd, so a wrong
    path can never silently fall back to the host's namespace."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise CNIError(Code.UNKNOWN_CONTAINER, f"network namespace {path} does not exist") from None
    try:
        async with AsyncIPRoute(netns=fd) as ipr:
            yield ipr, fd
    finally:
        os.close(fd)


async def _index(ipr: AsyncIPRoute, ifname: str) -> int | None:
    found = await ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


async def _link(ipr: AsyncIPRoute, index: int) -> Any:
    return (await ipr.link("get", index=index))[0]


async def _delete(ipr: AsyncIPRoute, ifname: str) -> None:
    index = await _index(ipr, ifname)
    if index is None:
        return
    try:
        await ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise


def _failed(step: str, exc: Exception) -> CNIError:
    return CNIError(Code.INTERFACE_SETUP_FAILED, f"{step} failed", repr(exc))


async def attach(container_id: str, netns: str, ifname: str, binding: PortBinding, *,
                 bridge: str | None, is_gateway: bool, mtu: int | None) -> Attached:
    """Create and configure the veth pair; on any failure nothing is left behind."""
    host_name = host_ifname(container_id, ifname)
    async with _netns(netns) as (pod, netns_fd), AsyncIPRoute() as host:
        await _delete(host, host_name)  # a half-done earlier ADD of this container
        if await _index(pod, ifname) is not None:
            raise CNIError(Code.INTERFACE_SETUP_FAILED,
                           f"{ifname} already exists in {netns}")
        peer: dict[str, Any] = {"ifname": ifname, "address": binding.mac, "net_ns_fd": netns_fd}
        extra: dict[str, Any] = {}
        if mtu is not None:
            peer["mtu"] = extra["mtu"] = mtu
        try:
            await host.link("add", ifname=host_name, kind="veth", peer=peer, **extra)
        except NetlinkError as exc:
            raise _failed(f"creating veth {host_name}/{ifname}", exc) from exc
        try:
            attached = await _configure_host_side(host, host_name, binding, bridge, is_gateway)
            await _configure_pod_side(pod, ifname, binding)
        except BaseException:
            await _delete(host, host_name)
            raise
    return attached


async def _configure_host_side(host: AsyncIPRoute, host_name: str, binding: PortBinding,
                               bridge: str | None, is_gateway: bool) -> Attached:
    step = f"bringing up {host_name}"
    try:
        index = await _index(host, host_name)
        if index is None:
            raise CNIError(Code.INTERFACE_SETUP_FAILED, f"{host_name} vanished after creation")
        bridge_mac = None
        if bridge:
            step = f"preparing bridge {bridge}"
            bridge_index = await _ensure_bridge(host, bridge)
            if is_gateway and binding.gateway:
                step = f"giving bridge {bridge} the gateway {binding.gateway}"
                await _ensure_address(host, bridge_index, binding.gateway, binding.prefixlen)
            step = f"attaching {host_name} to {bridge}"
            await host.link("set", index=index, master=bridge_index)
            bridge_mac = str((await _link(host, bridge_index)).get("address"))
        step = f"bringing up {host_name}"
        await host.link("set", index=index, state="up")
        host_mac = str((await _link(host, index)).get("address"))
    except NetlinkError as exc:
        raise _failed(step, exc) from exc
    return Attached(bridge=bridge, bridge_mac=bridge_mac, host_ifname=host_name, host_mac=host_mac)


async def _ensure_bridge(host: AsyncIPRoute, bridge: str) -> int:
    index = await _index(host, bridge)
    if index is None:
        try:
            await host.link("add", ifname=bridge, kind="bridge")
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:  # another ADD created it just now
                raise
        index = await _index(host, bridge)
        if index is None:
            raise CNIError(Code.INTERFACE_SETUP_FAILED, f"bridge {bridge} vanished after creation")
    await host.link("set", index=index, state="up")
    return index


async def _ensure_address(ipr: AsyncIPRoute, index: int, address: str, prefixlen: int) -> None:
    try:
        await ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise


async def _configure_pod_side(pod: AsyncIPRoute, ifname: str, binding: PortBinding) -> None:
    step = f"configuring {ifname}"
    try:
        index = await _index(pod, ifname)
        loopback = await _index(pod, "lo")
        if index is None:
            raise CNIError(Code.INTERFACE_SETUP_FAILED, f"{ifname} missing in the namespace")
        if loopback is not None:
            step = "bringing up lo"
            await pod.link("set", index=loopback, state="up")
        step = f"adding {binding.cidr_address} to {ifname}"
        await _ensure_address(pod, index, binding.address, binding.prefixlen)
        step = f"bringing up {ifname}"
        await pod.link("set", index=index, state="up")
        if binding.gateway:
            step = f"adding the default route via {binding.gateway}"
            await pod.route("add", dst=binding.default_route, gateway=binding.gateway, oif=index,
                            family=_family(binding.version))
    except NetlinkError as exc:
        raise _failed(step, exc) from exc


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


async def detach(container_id: str, netns: str, ifname: str) -> None:
    """Remove the pair. A missing namespace or interface is success (DEL is idempotent)."""
    try:
        async with AsyncIPRoute() as host:
            await _delete(host, host_ifname(container_id, ifname))
        if netns and os.path.exists(netns):
            async with _netns(netns) as (pod, _):
                await _delete(pod, ifname)
    except CNIError as exc:
        if exc.code != Code.UNKNOWN_CONTAINER:  # the namespace went away meanwhile: fine
            raise
    except NetlinkError as exc:
        raise _failed(f"removing {ifname} of container {container_id}", exc) from exc


async def verify(container_id: str, netns: str, ifname: str, *, mac: str, address: str,
                 prefixlen: int, gateway: str | None, version: int, bridge: str | None) -> None:
    """CHECK: the pod interface carries this MAC and address, routes via the gateway, and
    the host end is up (and on the bridge, if one is configured)."""
    def mismatch(msg: str) -> CNIError:
        return CNIError(Code.CHECK_FAILED, msg)

    async with _netns(netns) as (pod, _):
        index = await _index(pod, ifname)
        if index is None:
            raise mismatch(f"{ifname} does not exist in {netns}")
        link = await _link(pod, index)
        if str(link.get("address")).lower() != mac.lower():
            raise mismatch(f"{ifname} has MAC {link.get('address')}, expected {mac}")
        addresses = {(a.get("address"), a.get("prefixlen"))
                     async for a in await pod.addr("dump") if a.get("index") == index}
        if (address, prefixlen) not in addresses:
            raise mismatch(f"{ifname} lacks {address}/{prefixlen}")
        if gateway:
            routes = [r async for r in await pod.route("dump", family=_family(version))]
            if not any(r.get("dst_len") == 0 and r.get("gateway") == gateway for r in routes):
                raise mismatch(f"no default route via {gateway} in {netns}")
    async with AsyncIPRoute() as host:
        host_index = await _index(host, host_ifname(container_id, ifname))
        if host_index is None:
            raise mismatch(f"host end {host_ifname(container_id, ifname)} is missing")
        host_link = await _link(host, host_index)
        if bridge:
            bridge_index = await _index(host, bridge)
            if bridge_index is None or host_link.get("master") != bridge_index:
                raise mismatch(f"host end is not attached to bridge {bridge}")
