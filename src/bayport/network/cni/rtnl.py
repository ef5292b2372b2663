"""The few rtnetlink requests ``bayport-cni`` makes, over the stdlib ``socket`` module.

Why not pyroute2: the plugin is a process the runtime starts once per pod, and importing
pyroute2 (with asyncio) cost ~0.25 s of CPU per start — on a 2-core node, with 50 pods created at
once, the plugins' imports alone took longer than the pods' containers. What ADD, DEL and CHECK
need is a dozen fixed-shape messages (link get/add/set/del, address add/dump, route add/dump),
built here with ``struct``; errors come back as ``NetlinkError`` with the kernel's errno.

``Rtnl(netns_fd)`` opens the socket inside that network namespace: the calling thread joins it
(setns) just long enough to create the socket, which stays bound to it, and then returns to its
own, so a wrong path can never silently configure the host's namespace instead.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

# linux/rtnetlink.h, linux/netlink.h, linux/if_link.h, linux/veth.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLA_F_NESTED = 0x8000
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
IFF_UP = 0x1
CLONE_NEWNET = 0x40000000

_HEADER = struct.Struct("=IHHII")         # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")        # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")         # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")      # rtmsg: family, dst_len, src_len, tos, table, protocol,
                                          #        scope, type, flags
_ATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    """The kernel refused a request; ``code`` is its errno (EEXIST, ENODEV, ...)."""

    def __init__(self, code: int, what: str) -> None:
        super().__init__(code, f"{what}: {os.strerror(code)}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    mac: str | None
    master: int | None


def _attr(kind: int, payload: bytes) -> bytes:
    size = _ATTR.size + len(payload)
    return _ATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def _name(value: str) -> bytes:
    return value.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + _ATTR.size <= len(data):
        size, kind = _ATTR.unpack_from(data, offset)
        if size < _ATTR.size:
            return
        yield kind & ~NLA_F_NESTED, data[offset + _ATTR.size:offset + size]
        offset += size + (-size % 4)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise NetlinkError(code, "joining the network namespace")


def _open(netns_fd: int | None) -> socket.socket:
    if netns_fd is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(netns_fd)
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 socket.NETLINK_ROUTE)
        finally:
            _setns(own)
    finally:
        os.close(own)


class Rtnl:
    """One rtnetlink socket (in ``netns_fd``'s namespace, else this thread's), used as a context."""

    def __init__(self, netns_fd: int | None = None) -> None:
        self._sock = _open(netns_fd)
        self._seq = 0

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()

    # --- transport --------------------------------------------------------------------------------

    def _request(self, kind: int, flags: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """Send one request; the (type, payload) replies, until the ACK or the dump's end."""
        self._seq += 1
        seq = self._seq
        self._sock.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + _HEADER.size <= len(data):
                size, reply, _, reply_seq, _ = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size:offset + size]
                offset += size + (-size % 4)
                if reply_seq != seq:
                    continue
                if reply == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise NetlinkError(-code, what)
                    return replies                 # the ACK
                if reply == NLMSG_DONE:
                    return replies
                replies.append((reply, payload))
                if not flags & (NLM_F_DUMP | NLM_F_ACK):
                    return replies                 # a plain get: one answer

    # --- links ------------------------------------------------------------------------------------

    def link(self, name: str | None = None, *, index: int = 0) -> Link | None:
        """The link named ``name`` (or with ``index``); None when there is none."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        if name:
            body += _attr(IFLA_IFNAME, _name(name))
        try:
            replies = self._request(RTM_GETLINK, 0, body, f"looking up {name or index}")
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        for kind, payload in replies:
            if kind != RTM_NEWLINK:
                continue
            _, _, found, _, _ = _IFINFO.unpack_from(payload)
            attrs = dict(_attrs(payload[_IFINFO.size:]))
            master = attrs.get(IFLA_MASTER)
            return Link(index=found, name=attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(),
                        mac=_mac(attrs[IFLA_ADDRESS]) if IFLA_ADDRESS in attrs else None,
                        master=struct.unpack("=I", master)[0] if master else None)
        return None

    def index(self, name: str) -> int | None:
        found = self.link(name)
        return found.index if found is not None else None

    def add_veth(self, name: str, peer: str, *, peer_mac: str, peer_netns_fd: int, mtu: int | None) -> None:
        """A veth pair: ``name`` here, ``peer`` created directly in ``peer_netns_fd``'s namespace."""
        mtu_attr = _attr(IFLA_MTU, _u32(mtu)) if mtu is not None else b""
        peer_msg = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(peer))
                    + _attr(IFLA_ADDRESS, bytes.fromhex(peer_mac.replace(":", "")))
                    + _attr(IFLA_NET_NS_FD, _u32(peer_netns_fd)) + mtu_attr)
        info = _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA | NLA_F_NESTED,
                                                      _attr(VETH_INFO_PEER | NLA_F_NESTED, peer_msg))
        body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name)) + mtu_attr
                + _attr(IFLA_LINKINFO | NLA_F_NESTED, info))
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body,
                      f"creating veth {name}/{peer}")

    def add_bridge(self, name: str) -> None:
        body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, _name(name))
                + _attr(IFLA_LINKINFO | NLA_F_NESTED, _attr(IFLA_INFO_KIND, b"bridge")))
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body, f"creating bridge {name}")

    def set_link(self, index: int, *, up: bool = False, master: int | None = None) -> None:
        flags = IFF_UP if up else 0
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, flags)
        if master is not None:
            body += _attr(IFLA_MASTER, _u32(master))
        self._request(RTM_NEWLINK, NLM_F_ACK, body, f"changing link {index}")

    def delete_link(self, index: int) -> None:
        self._request(RTM_DELLINK, NLM_F_ACK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0),
                      f"deleting link {index}")

    # --- addresses and routes -----------------------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        ip = ipaddress.ip_address(address)
        body = (_IFADDR.pack(_family(ip.version), prefixlen, 0, RT_SCOPE_UNIVERSE, index)
                + _attr(IFA_LOCAL, ip.packed) + _attr(IFA_ADDRESS, ip.packed))
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body, f"adding {address}")

    def addresses(self, index: int) -> set[tuple[str, int]]:
        """(address, prefixlen) of every address on link ``index``."""
        found = set()
        body = _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for kind, payload in self._request(RTM_GETADDR, NLM_F_DUMP, body, "listing addresses"):
            if kind != RTM_NEWADDR:
                continue
            _, prefixlen, _, _, owner = _IFADDR.unpack_from(payload)
            attrs = dict(_attrs(payload[_IFADDR.size:]))
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if owner == index and raw:
                found.add((str(ipaddress.ip_address(raw)), prefixlen))
        return found

    def add_default_route(self, gateway: str, index: int, version: int) -> None:
        ip = ipaddress.ip_address(gateway)
        body = (_RTMSG.pack(_family(version), 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                            RTN_UNICAST, 0)
                + _attr(RTA_GATEWAY, ip.packed) + _attr(RTA_OIF, _u32(index)))
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, body,
                      f"adding the default route via {gateway}")

    def default_gateways(self, version: int) -> set[str]:
        """Gateways of the default routes of the main table."""
        gateways = set()
        body = _RTMSG.pack(_family(version), 0, 0, 0, 0, 0, 0, 0, 0)
        for kind, payload in self._request(RTM_GETROUTE, NLM_F_DUMP, body, "listing routes"):
            if kind != RTM_NEWROUTE:
                continue
            _, dst_len, _, _, table, _, _, _, _ = _RTMSG.unpack_from(payload)
            attrs = dict(_attrs(payload[_RTMSG.size:]))
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if dst_len == 0 and table == RT_TABLE_MAIN and RTA_GATEWAY in attrs:
                gateways.add(str(ipaddress.ip_address(attrs[RTA_GATEWAY])))
        return gateways
