"""Helpers for the pod-network controller tests on a whole Bayport (tests/stack.py): a bay on
the default (bayport) network driver, pods created straight through the bay's API with
lightkube, waiting for them to run, and the ports IPAM holds."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from lightkube import AsyncClient
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Pod

from bayport.db.models import BayRow
from bayport.network import ipam
from bayport.network.annotation_keys import NEUTRON_PORT, NEUTRON_SUBNET, PORT_ID
from bayport.network.controller import PodNetworkController, controller_of
from tests.stack import Stack


async def pool_subnets(stack: Stack, bay_uuid: str, count: int = 2) -> list[ipaddress.IPv4Network]:
    """The first ``count`` /24s of the bay's own pod pool (bays.pod_pool), in carving order."""
    async with stack.state.sessionmaker() as session:
        row = await session.get(BayRow, bay_uuid)
    assert row is not None and row.pod_pool, "the bay has no pod pool"
    return list(itertools.islice(ipaddress.IPv4Network(row.pod_pool).subnets(new_prefix=24), count))


def controller(stack: Stack) -> PodNetworkController:
    return controller_of(stack.conductor)


async def networked_bay(stack: Stack, client: httpx.AsyncClient, name: str = "testbay",
                        node_count: int = 1) -> dict[str, Any]:
    """A bay from a baymodel that leaves network_driver at its default (bayport), watched."""
    if (await client.get("/v1/baymodels/k8s")).status_code == 404:
        model = await stack.baymodel(client, "k8s")
        assert model["network_driver"] == "bayport"
    bay = await stack.bay(client, "k8s", name=name, node_count=node_count)
    assert bay["status"] == "CREATE_COMPLETE", bay
    await asyncio.wait_for(controller(stack).settled(bay["uuid"]), 10)
    return bay


def pod(name: str, namespace: str = "default", **annotations: str) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace=namespace, annotations=annotations or None),
               spec=PodSpec(containers=[Container(name="c", image="busybox:1.36")]))


async def make_namespace(k8s: AsyncClient, name: str) -> None:
    await k8s.create(Namespace(metadata=ObjectMeta(name=name)))


async def wait_pod(k8s: AsyncClient, name: str, namespace: str = "default",
                   done: Callable[[Pod], bool] | None = None, timeout: float = 10.0) -> Pod:
    """Poll the pod until ``done`` (default: Running with a podIP)."""
    def running(p: Pod) -> bool:
        return p.status is not None and p.status.phase == "Running" and bool(p.status.podIP)

    check = done or running
    deadline = time.monotonic() + timeout
    while True:
        current = await k8s.get(Pod, name, namespace=namespace)
        if check(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {namespace}/{name} not there after {timeout}s: {current.status}")
        await asyncio.sleep(0.01)


async def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Await ``check()`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        await asyncio.sleep(0.01)


async def ports(stack: Stack, bay_uuid: str, namespace: str | None = None) -> list[ipam.PortRecord]:
    async with stack.state.sessionmaker() as session:
        return await ipam.list_ports(session, bay_uuid, namespace)


def port_annotations(p: Pod) -> tuple[dict[str, Any], dict[str, Any], str]:
    assert p.metadata is not None and p.metadata.annotations is not None
    notes = p.metadata.annotations
    return json.loads(notes[NEUTRON_PORT]), json.loads(notes[NEUTRON_SUBNET]), notes[PORT_ID]
