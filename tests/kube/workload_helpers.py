"""Helpers for the workload tests that run a whole Bayport (tests/stack.py): a ready bay,
waiting for a row to reach a state, and a lightkube client straight at the bay's cluster
to check what really exists there."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from lightkube import AsyncClient

from bayport.kube.client import ClusterClients
from tests.stack import Stack


async def ready_bay(stack: Stack, client: httpx.AsyncClient, name: str = "testbay", node_count: int = 3,
                    baymodel: str = "k8s") -> dict[str, Any]:
    listed = (await client.get(f"/v1/baymodels/{baymodel}")).status_code
    if listed == 404:
        await stack.baymodel(client, baymodel)
    bay = await stack.bay(client, baymodel, name=name, node_count=node_count)
    assert bay["status"] == "CREATE_COMPLETE", bay
    return bay


async def wait_row(client: httpx.AsyncClient, plural: str, uuid: str,
                   done: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get(f"/v1/{plural}/{uuid}")
        assert resp.status_code == 200, resp.text
        row = dict(resp.json())
        if done(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"{plural} {uuid} did not get there in {timeout}s: {row}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def cluster(stack: Stack, bay_uuid: str) -> AsyncIterator[AsyncClient]:
    """A lightkube client for the bay's Kubernetes API, as the conductor builds it."""
    clients = ClusterClients(stack.state.sessionmaker)
    try:
        yield await clients.get(bay_uuid)
    finally:
        await clients.close()


def manifest(kind: str, name: str, **extra: Any) -> str:
    """A small valid v1 manifest of ``kind`` (YAML)."""
    namespace = f"\n  namespace: {extra['namespace']}" if "namespace" in extra else ""
    if kind == "Pod":
        return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}{namespace}\n"
                f"  labels: {{app: {name}}}\nspec:\n  containers:\n  - name: c\n"
                f"    image: {extra.get('image', 'busybox:1.36')}\n")
    if kind == "Service":
        return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}{namespace}\nspec:\n"
                f"  selector: {{app: {name}}}\n  ports:\n  - port: {extra.get('port', 80)}\n")
    replicas = extra.get("replicas", 2)
    return (f"apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: {name}{namespace}\n"
            f"spec:\n  replicas: {replicas}\n  selector: {{app: {name}}}\n  template:\n"
            f"    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n"
            f"      - name: c\n        image: busybox:1.36\n")
