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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bayport.network.cni.binding import PortBinding
from bayport.network.cni.rtnl import NetlinkError, Rtnl
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


@contextmanager
def _netns(path: str) -> Iterator[tuple[Rtnl, int]]:
    """Netlink inside the namespace at ``path`` and an fd of it. Opened by fd, so a wrong
    path can never silently fall back to the host's namespace."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CNIError(Code.UNKNOWN_CONTAINER, f"network namespace {path} does not exist") from None
    try:
        try:
            pod = Rtnl(fd)
        except NetlinkError as exc:
            raise _failed(f"entering network namespace {path}", exc) from exc
        with pod:
            yield pod, fd
    finally:
        os.close(fd)


def _delete(rtnl: Rtnl, ifname: str) -> None:
    index = rtnl.index(ifname)
    if index is None:
        return
    try:
        rtnl.delete_link(index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise


def _failed(step: str, exc: Exception) -> CNIError:
    return CNIError(Code.INTERFACE_SETUP_FAILED, f"{step} failed", repr(exc))


def attach(container_id: str, netns: str, ifname: str, binding: PortBinding, *,
           bridge: str | None, is_gateway: bool, mtu: int | None) -> Attached:
    """Create and configure the veth pair; on any failure nothing is left behind."""
    host_name = host_ifname(container_id, ifname)
    with _netns(netns) as (pod, netns_fd), Rtnl() as host:
        try:
            _delete(host, host_name)  # a half-done earlier ADD of this container
            exists = pod.index(ifname) is not None
        except NetlinkError as exc:
            raise _failed(f"removing a stale {host_name}", exc) from exc
        if exists:
            raise CNIError(Code.INTERFACE_SETUP_FAILED, f"{ifname} already exists in {netns}")
        try:
            host.add_veth(host_name, ifname, peer_mac=binding.mac, peer_netns_fd=netns_fd, mtu=mtu)
        except NetlinkError as exc:
            raise _failed(f"creating veth {host_name}/{ifname}", exc) from exc
        try:
            attached = _configure_host_side(host, host_name, binding, bridge, is_gateway)
            _configure_pod_side(pod, ifname, binding)
        except BaseException:
            _delete(host, host_name)
            raise
    return attached


def _configure_host_side(host: Rtnl, host_name: str, binding: PortBinding,
                         bridge: str | None, is_gateway: bool) -> Attached:
    step = f"bringing up {host_name}"
    try:
        index = host.index(host_name)
        if index is None:
            raise CNIError(Code.INTERFACE_SETUP_FAILED, f"{host_name} vanished after creation")
        bridge_mac = None
        if bridge:
            step = f"preparing bridge {bridge}"
            bridge_index = _ensure_bridge(host, bridge)
            if is_gateway and binding.gateway:
                step = f"giving bridge {bridge} the gateway {binding.gateway}"
                _ensure_address(host, bridge_index, binding.gateway, binding.prefixlen)
            step = f"attaching {host_name} to {bridge}"
            host.set_link(index, master=bridge_index)
            bridge_link = host.link(index=bridge_index)
            bridge_mac = bridge_link.mac if bridge_link is not None else None
        step = f"bringing up {host_name}"
        host.set_link(index, up=True)
        link = host.link(index=index)
        if link is None or link.mac is None:
            raise CNIError(Code.INTERFACE_SETUP_FAILED, f"{host_name} vanished while configuring it")
    except NetlinkError as exc:
        raise _failed(step, exc) from exc
    return Attached(bridge=bridge, bridge_mac=bridge_mac, host_ifname=host_name, host_mac=link.mac)


def _ensure_bridge(host: Rtnl, bridge: str) -> int:
    index = host.index(bridge)
    if index is None:
        try:
            host.add_bridge(bridge)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:  # another ADD created it just now
                raise
        index = host.index(bridge)
        if index is None:
            raise CNIError(Code.INTERFACE_SETUP_FAILED, f"bridge {bridge} vanished after creation")
    host.set_link(index, up=True)
    return index


def _ensure_address(rtnl: Rtnl, index: int, address: str, prefixlen: int) -> None:
    try:
        rtnl.add_address(index, address, prefixlen)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise


def _configure_pod_side(pod: Rtnl, ifname: str, binding: PortBinding) -> None:
    step = f"configuring {ifname}"
    try:
        index = pod.index(ifname)
        loopback = pod.index("lo")
        if index is None:
            raise CNIError(Code.INTERFACE_SETUP_FAILED, f"{ifname} missing in the namespace")
        if loopback is not None:
            step = "bringing up lo"
            pod.set_link(loopback, up=True)
        step = f"adding {binding.cidr_address} to {ifname}"
        _ensure_address(pod, index, binding.address, binding.prefixlen)
        step = f"bringing up {ifname}"
        pod.set_link(index, up=True)
        if binding.gateway:
            step = f"adding the default route via {binding.gateway}"
            pod.add_default_route(binding.gateway, index, binding.version)
    except NetlinkError as exc:
        raise _failed(step, exc) from exc


def detach(container_id: str, netns: str, ifname: str) -> None:
    """Remove the pair. A missing namespace or interface is success (DEL is idempotent)."""
    try:
        with Rtnl() as host:
            _delete(host, host_ifname(container_id, ifname))
        if netns and os.path.exists(netns):
            with _netns(netns) as (pod, _):
                _delete(pod, ifname)
    except CNIError as exc:
        if exc.code != Code.UNKNOWN_CONTAINER:  # the namespace went away meanwhile: fine
            raise
    except NetlinkError as exc:
        raise _failed(f"removing {ifname} of container {container_id}", exc) from exc


def verify(container_id: str, netns: str, ifname: str, *, mac: str, address: str,
           prefixlen: int, gateway: str | None, version: int, bridge: str | None) -> None:
    """CHECK: the pod interface carries this MAC and address, routes via the gateway, and
    the host end is up (and on the bridge, if one is configured)."""
    def mismatch(msg: str) -> CNIError:
        return CNIError(Code.CHECK_FAILED, msg)

    try:
        with _netns(netns) as (pod, _):
            link = pod.link(ifname)
            if link is None:
                raise mismatch(f"{ifname} does not exist in {netns}")
            if str(link.mac).lower() != mac.lower():
                raise mismatch(f"{ifname} has MAC {link.mac}, expected {mac}")
            if (address, prefixlen) not in pod.addresses(link.index):
                raise mismatch(f"{ifname} lacks {address}/{prefixlen}")
            if gateway and gateway not in pod.default_gateways(version):
                raise mismatch(f"no default route via {gateway} in {netns}")
        with Rtnl() as host:
            host_link = host.link(host_ifname(container_id, ifname))
            if host_link is None:
                raise mismatch(f"host end {host_ifname(container_id, ifname)} is missing")
            if bridge:
                bridge_index = host.index(bridge)
                if bridge_index is None or host_link.master != bridge_index:
                    raise mismatch(f"host end is not attached to bridge {bridge}")
    except NetlinkError as exc:
        raise _failed(f"checking {ifname} of container {container_id}", exc) from exc
