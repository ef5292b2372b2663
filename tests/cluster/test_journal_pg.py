"""Embedded clusters journalled in PostgreSQL (cluster.journal_pg): a cluster opened on another
machine (another state dir) from the same database has every object, with its uid, and the
resourceVersions carry on; the host that opened it last is the only one that can write."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from tests.cluster.apiserver_helpers import pod_manifest
from tests.pg import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def conninfo() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def spec(data_dir: Path, conninfo: str, uid: str) -> ClusterSpec:
    return ClusterSpec(name="pg", uid=uid, token="tok", node_count=2, data_dir=data_dir,
                       store_url=conninfo)


def client(c: EmbeddedCluster) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=c.url, headers={"Authorization": "Bearer tok"}, timeout=10)


async def test_another_host_gets_every_object_back(tmp_path: Path, conninfo: str) -> None:
    uid = str(uuid.uuid4())
    first = EmbeddedCluster(spec(tmp_path / "host-a", conninfo, uid))
    await first.start()
    async with client(first) as http:
        assert (await http.post("/api/v1/namespaces", json={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})).status_code == 201
        made = [(await http.post("/api/v1/namespaces/acme/pods", json=pod_manifest(f"p{i}"))).json()
                for i in range(5)]
        assert (await http.delete("/api/v1/namespaces/acme/pods/p4")).status_code == 200
        rv = int((await http.get("/api/v1/pods")).json()["metadata"]["resourceVersion"])
    await first.stop(keep=True)
    assert not (tmp_path / "host-a" / "objects.sqlite").exists()   # nothing of it on local disk

    second = EmbeddedCluster(spec(tmp_path / "host-b", conninfo, uid))   # another machine
    await second.start()
    try:
        async with client(second) as http:
            pods = (await http.get("/api/v1/namespaces/acme/pods")).json()
            assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods["items"]} == \
                {m["metadata"]["name"]: m["metadata"]["uid"] for m in made[:4]}
            assert int(pods["metadata"]["resourceVersion"]) >= rv
            again = (await http.post("/api/v1/namespaces/acme/pods", json=pod_manifest("p9"))).json()
            assert int(again["metadata"]["resourceVersion"]) > rv
            assert second.restored >= 5
    finally:
        await second.stop()
    with psycopg.connect(conninfo) as db:   # a delete takes the cluster's rows with it
        left = db.execute("select count(*) from cluster_objects where cluster = %s", (uid,)).fetchone()
        assert left == (0,)


async def test_the_host_that_opened_it_last_is_the_only_writer(tmp_path: Path, conninfo: str) -> None:
    uid = str(uuid.uuid4())
    old = EmbeddedCluster(spec(tmp_path / "old", conninfo, uid))
    await old.start()
    new: EmbeddedCluster | None = None
    try:
        async with client(old) as http:
            assert (await http.post("/api/v1/namespaces/default/pods",
                                    json=pod_manifest("before"))).status_code == 201
            new = EmbeddedCluster(spec(tmp_path / "new", conninfo, uid))   # re-hosted elsewhere
            await new.start()
            refused = await http.post("/api/v1/namespaces/default/pods", json=pod_manifest("late"))
            assert refused.status_code == 503, refused.text
            assert "another host has taken this cluster over" in refused.json()["message"]
        async with client(new) as http:
            names = {p["metadata"]["name"] for p in
                     (await http.get("/api/v1/namespaces/default/pods")).json()["items"]}
            assert "before" in names and "late" not in names
    finally:
        await old.stop(keep=True)
        if new is not None:
            await new.stop()


async def test_clusters_in_one_database_stay_apart(tmp_path: Path, conninfo: str) -> None:
    a = EmbeddedCluster(spec(tmp_path / "a", conninfo, str(uuid.uuid4())))
    b = EmbeddedCluster(spec(tmp_path / "b", conninfo, str(uuid.uuid4())))
    await a.start()
    await b.start()
    try:
        async with client(a) as http:
            await http.post("/api/v1/namespaces/default/pods", json=pod_manifest("only-in-a"))
        async with client(b) as http:
            names = {p["metadata"]["name"] for p in
                     (await http.get("/api/v1/namespaces/default/pods")).json()["items"]}
            assert "only-in-a" not in names
    finally:
        await a.stop()
        await b.stop()
