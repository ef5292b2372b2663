"""Faults of production mode that used to lose objects (issue 10, items 9 and 10), each on
the shipped processes (``tests.product.production``) and each deterministic:

* a conductor did the work but its acks and replies never reached RabbitMQ (a broker
  restart or a partition at that moment): every message comes back, and the redelivered
  ``pod_create`` found "its" pod already there and answered 409, after which the API removed
  the row: a Running pod with a port and no Bayport row, a retry 409, a DELETE 404.
* the API was SIGKILLed after writing a pod row ``Creating`` and before its message reached
  the broker: the row stayed ``Creating`` for ever, with no object, and kept its name.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_production import pg_url, vhost  # noqa: F401 - fixtures used by name
from tests.product.production import BrokerLink, Production, production
from tests.product.served import BAYPORT

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: main
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
"""


async def simulated_bay(prod: Production, name: str, runtime: str = "simulated") -> None:
    await prod.cli("baymodel-create", "--name", f"{name}-model", "--image-id", "fedora-atomic",
                   "--keypair-id", "default", "--external-network-id", "public",
                   "--labels", f"runtime={runtime}")
    await prod.cli("bay-create", "--name", name, "--baymodel", f"{name}-model", "--node-count", "1",
                   "--wait")


def manifest(root: Path, name: str) -> str:
    path = root / f"{name}.yaml"
    path.write_text(POD.format(name=name))
    return str(path)


async def labelled_pods(prod: Production, bay: str, namespace: str = "default") -> dict[str, str]:
    """name → bayport.io/uuid of the bay's pods that Bayport labelled, as kubectl sees them."""
    listing = await prod.kubectl_json(bay, "get", "pods", "-n", namespace, "-l", "bayport.io/uuid")
    return {p["metadata"]["name"]: p["metadata"]["labels"]["bayport.io/uuid"] for p in listing["items"]}


async def until(what: str, check: Any, timeout: float, *, log: Production | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s" + (f"\n{log.log_text()}" if log else ""))
        await asyncio.sleep(0.2)


@pytest.mark.timeout(150)
async def test_creates_redelivered_after_their_work_was_done_finish_their_rows(
        tmp_path: Path, vhost: str, pg_url: str) -> None:  # noqa: F811
    link = BrokerLink()
    await link.start()
    try:
        async with production(tmp_path, pg_url, vhost, start=("api", "conductor-a", "netd"),
                              overrides={"conductor-a": {"BAYPORT_TRANSPORT_URL": link.url(vhost)}},
                              heartbeat_interval="0.5", rpc_timeout="20") as prod:
            await simulated_bay(prod, "sim")          # hosted by conductor-a, the only one yet
            prod.start("conductor-b")
            await prod.wait_started("conductor-b")
            names = [f"re{i}" for i in range(6)]
            link.hold()                               # a's acks and replies stop here
            creates = [asyncio.create_task(prod.run(BAYPORT, "pod-create", "--manifest",
                                                    manifest(tmp_path, n), "--bay", "sim"))
                       for n in names]

            async def all_made() -> bool:
                return set(await labelled_pods(prod, "sim")) >= set(names)

            await until("every pod made by conductor-a", all_made, 30, log=prod)
            link.cut()                                # every unacked message goes out again
            results = await asyncio.gather(*creates)
            refused = [out + err for code, out, err in results if code != 0]
            rows = {p["name"]: p for p in await prod.cli_json("pod-list", "--bay", "sim")}
            objects = await labelled_pods(prod, "sim")
            orphans = sorted(n for n, u in objects.items() if rows.get(n, {}).get("uuid") != u)
            print(f"redelivered creates: refused {len(refused)}, orphaned objects {len(orphans)}")
            assert not refused, refused
            assert not orphans, (orphans, rows)
            assert sorted(rows) == sorted(names)
            for name in names:                        # and each is the user's to delete
                await prod.cli("pod-delete", name, "--bay", "sim")
            assert await labelled_pods(prod, "sim") == {}
    finally:
        await link.close()


@pytest.mark.timeout(150)
async def test_a_row_left_creating_by_a_killed_api_is_failed_and_frees_its_name(
        tmp_path: Path, vhost: str, pg_url: str) -> None:  # noqa: F811
    link = BrokerLink()
    await link.start()
    try:
        async with production(tmp_path, pg_url, vhost,
                              overrides={"api": {"BAYPORT_TRANSPORT_URL": link.url(vhost)}},
                              heartbeat_interval="0.5", rpc_timeout="4") as prod:
            await simulated_bay(prod, "sim")
            link.hold()                               # the API's publish never reaches the broker
            create = asyncio.create_task(prod.run(BAYPORT, "pod-create", "--manifest",
                                                  manifest(tmp_path, "web"), "--bay", "sim"))

            async def creating_row() -> list[dict[str, Any]]:
                return [p for p in await prod.cli_json("pod-list", "--bay", "sim")
                        if p["name"] == "web" and p["status"] == "Creating"]

            [row] = await until("the row written Creating", creating_row, 20, log=prod)
            await prod.kill("api")
            link.cut()
            assert (await create)[0] != 0             # the user got no answer
            prod.start("api")
            await prod.wait_api()

            async def name_free() -> bool:
                code, _, _ = await prod.run(BAYPORT, "pod-create", "--manifest",
                                            manifest(tmp_path, "web"), "--bay", "sim")
                return code == 0

            began = time.monotonic()
            await until("the name of the abandoned row free again", name_free, 45, log=prod)
            print(f"abandoned row settled after {time.monotonic() - began:.1f}s")
            old = await prod.cli_json("pod-show", row["uuid"])
            assert old["status"] != "Creating" and old["status_reason"], old
            live = [p for p in await prod.cli_json("pod-list", "--bay", "sim") if p["name"] == "web"]
            assert len(live) == 1 and live[0]["uuid"] != row["uuid"], live
            objects = await labelled_pods(prod, "sim")
            assert objects == {"web": live[0]["uuid"]}
    finally:
        await link.close()
