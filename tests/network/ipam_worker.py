"""One allocating "controller process" for the multi-process IPAM test.

Run as ``python -m tests.network.ipam_worker URL SUBNET_ID COUNT``: prints ``ready``,
waits for a line on stdin (the start barrier), then allocates COUNT addresses one
transaction each, releases every fourth, allocates until the subnet is exhausted and
prints the addresses it still holds as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bayport.db.base import make_engine, make_sessionmaker
from bayport.network import ipam


async def run(url: str, subnet_id: str, count: int) -> list[str]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        held: list[str] = []
        for _ in range(count):
            async with sessions() as session, session.begin():
                held.append(await ipam.allocate_address(session, subnet_id))
        for address in held[::4]:
            async with sessions() as session, session.begin():
                assert await ipam.release_address(session, subnet_id, address)
        held = [a for i, a in enumerate(held) if i % 4]
        while True:
            try:
                async with sessions() as session, session.begin():
                    held.append(await ipam.allocate_address(session, subnet_id))
            except ipam.SubnetExhausted:
                return held
    finally:
        await engine.dispose()


if __name__ == "__main__":
    addresses = asyncio.run(run(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    print(json.dumps(addresses), flush=True)
