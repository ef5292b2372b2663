"""EmbeddedCluster lifecycle: fast start, seeded namespaces/nodes/kubernetes Service, node
addresses, resize, pod logs through the API, kubeconfig, and stop freeing the port."""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlparse

import httpx
import pytest
import yaml

from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.cluster.tls import serving_identity
from tests.cluster.apiserver_helpers import pod_manifest
from tests.conftest import require


def spec(name: str = "bay1", master_count: int = 1, node_count: int = 1) -> ClusterSpec:
    return ClusterSpec(name=name, uid="0f0e", token="tok", master_count=master_count, node_count=node_count)


@pytest.fixture
async def cluster() -> AsyncIterator[EmbeddedCluster]:
    c = EmbeddedCluster(spec(master_count=1, node_count=2))
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def client(c: EmbeddedCluster) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=c.url, headers={"Authorization": "Bearer tok"}, timeout=10)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_start_is_fast_and_seeds_the_cluster() -> None:
    serving_identity()                      # one-time certificate creation is per process
    c = EmbeddedCluster(spec(name="Fast_Bay", master_count=1, node_count=3))
    started = time.perf_counter()
    url = await c.start()
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 0.1, f"start took {elapsed * 1000:.1f} ms"
        assert url.startswith("http://127.0.0.1:") and c.url == url
        assert c.master_addresses() == ["10.0.0.10"]
        assert c.node_addresses() == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
        nodes, _ = c.store.list("nodes")
        assert [n["metadata"]["name"] for n in nodes] == [
            "fast-bay-master-0", "fast-bay-node-0", "fast-bay-node-1", "fast-bay-node-2"]
        master = nodes[0]
        assert master["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
        assert master["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane",
                                             "effect": "NoSchedule"}]
        worker = nodes[1]
        assert worker["spec"]["podCIDR"] == "10.100.1.0/24"
        assert worker["status"]["capacity"] == {"cpu": "2", "memory": "4Gi", "pods": "110",
                                                "ephemeral-storage": "20Gi"}
        assert worker["metadata"]["labels"]["bayport.io/runtime"] == "simulated"
        ready = [x for x in worker["status"]["conditions"] if x["type"] == "Ready"]
        assert ready[0]["status"] == "True"
        namespaces = {n["metadata"]["name"] for n in c.store.list("namespaces")[0]}
        assert namespaces == {"default", "kube-system", "kube-public", "kube-node-lease"}
        svc = c.store.get("services", "default", "kubernetes")
        assert svc["spec"]["clusterIP"] == "10.254.0.1"
        async with client(c) as http:
            assert (await http.get("/healthz")).text == "ok"
            r = await http.post("/api/v1/namespaces/default/services",
                                json={"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
            assert r.status_code == 201 and r.json()["spec"]["clusterIP"] == "10.254.0.2"
    finally:
        await c.stop()


async def test_stop_frees_the_port() -> None:
    c = EmbeddedCluster(spec())
    url = await c.start()
    port = urlparse(url).port
    assert port is not None
    async with client(c) as http:
        assert (await http.get("/api/v1/nodes")).status_code == 200
        watch = http.stream("GET", "/api/v1/pods", params={"watch": "1"})
        response = await watch.__aenter__()
        assert response.status_code == 200
        await c.stop()
        await watch.__aexit__(None, None, None)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    assert c.url == ""


async def test_many_clusters_in_one_process() -> None:
    clusters = [EmbeddedCluster(spec(name=f"b{i}", node_count=1)) for i in range(5)]
    urls = [await c.start() for c in clusters]
    try:
        assert len(set(urls)) == 5
        for c in clusters:
            async with client(c) as http:
                names = [n["metadata"]["name"] for n in (await http.get("/api/v1/nodes")).json()["items"]]
            assert names == [f"{c.spec.name}-master-0", f"{c.spec.name}-node-0"]
    finally:
        for c in clusters:
            await c.stop()


async def test_resize_adds_and_removes_workers(cluster: EmbeddedCluster) -> None:
    assert await cluster.resize(4) == ["10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"]
    assert cluster.store.exists("nodes", None, "bay1-node-3")
    pod = pod_manifest("pinned")
    pod["spec"]["nodeName"] = "bay1-node-3"
    cluster.store.create("pods", pod)
    assert await cluster.resize(1) == ["10.0.0.11"]
    assert not cluster.store.exists("nodes", None, "bay1-node-3")
    assert not cluster.store.exists("pods", "default", "pinned")
    assert cluster.spec.node_count == 1


async def test_pod_runs_and_logs_are_served(cluster: EmbeddedCluster) -> None:
    async with client(cluster) as http:
        r = await http.post("/api/v1/namespaces/default/pods", json=pod_manifest("web"))
        assert r.status_code == 201

        def running() -> bool:
            return bool(cluster.store.get("pods", "default", "web")["status"].get("phase") == "Running")

        await wait_for(running)
        pod = cluster.store.get("pods", "default", "web")
        assert pod["spec"]["nodeName"].startswith("bay1-node-")
        r = await http.get("/api/v1/namespaces/default/pods/web/log")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        r = await http.get("/api/v1/namespaces/default/pods/web/log", params={"container": "nope"})
        assert r.status_code == 400 and r.json()["reason"] == "BadRequest"


async def test_kubeconfig_points_at_tls_listener(cluster: EmbeddedCluster) -> None:
    require(serving_identity() is not None, "openssl is not installed")
    identity = cluster.identity()
    require(identity is not None, "openssl is not installed")
    assert identity is not None
    config = yaml.safe_load(cluster.kubeconfig())
    server = config["clusters"][0]["cluster"]
    assert server["server"] == cluster.https_url and server["certificate-authority-data"]
    assert config["users"][0]["user"]["token"] == "tok"
    with tempfile.NamedTemporaryFile(suffix=".pem") as ca:
        ca.write(identity.cert_pem)
        ca.flush()
        verify = ssl.create_default_context(cafile=ca.name)
        async with httpx.AsyncClient(base_url=cluster.https_url, verify=verify,
                                     headers={"Authorization": "Bearer tok"}) as https:
            assert (await https.get("/version")).json()["gitVersion"] == "v1.31.0"


async def test_followed_logs_stream_until_the_client_leaves(cluster: EmbeddedCluster) -> None:
    async with client(cluster) as http:
        await http.post("/api/v1/namespaces/default/pods", json=pod_manifest("tail"))

        def running() -> bool:
            return bool(cluster.store.get("pods", "default", "tail")["status"].get("phase") == "Running")

        await wait_for(running)
        async with http.stream("GET", "/api/v1/namespaces/default/pods/tail/log",
                               params={"follow": "true", "tailLines": "5"}) as response:
            assert response.status_code == 200
            first = await asyncio.wait_for(anext(response.aiter_lines()), 5)
        assert "pod default/tail" in first
        r = await http.get("/api/v1/namespaces/default/pods/tail/log", params={"previous": "true"})
        assert r.status_code == 400


async def test_stopped_cluster_starts_again_empty() -> None:
    c = EmbeddedCluster(spec(node_count=1))
    await c.start()
    c.store.create("pods", pod_manifest("before"))
    await c.stop()
    await c.start()
    try:
        assert not c.store.exists("pods", "default", "before")
        assert c.node_addresses() == ["10.0.0.11"]
        async with client(c) as http:
            r = await http.post("/api/v1/namespaces/default/pods", json=pod_manifest("after"))
            assert r.status_code == 201

            def running() -> bool:
                return bool(c.store.get("pods", "default", "after")["status"].get("phase") == "Running")

            await wait_for(running)
    finally:
        await c.stop()
