"""One ICMP echo, for the CNI tests on machines without a ``ping`` binary.

``python -m tests.network.icmp_ping DST`` (as root, e.g. under ``ip netns exec``):
exit 0 when DST answers the echo within two seconds, 1 otherwise.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time

ECHO_REQUEST, ECHO_REPLY = 8, 0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(destination: str, timeout: float = 2.0) -> bool:
    ident = os.getpid() & 0xFFFF
    payload = b"bayport-cni-test"
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", ECHO_REQUEST, 0, _checksum(header + payload), ident, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        try:
            sock.sendto(packet, (destination, 0))
        except OSError:  # no route to the destination at all
            return False
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (source, _) = sock.recvfrom(2048)
            except TimeoutError:
                return False
            start = (data[0] & 0x0F) * 4
            kind, _, _, reply_id, _ = struct.unpack("!BBHHH", data[start:start + 8])
            if kind == ECHO_REPLY and reply_id == ident and source == destination:
                return True
    return False


if __name__ == "__main__":
    sys.exit(0 if ping(sys.argv[1]) else 1)
