"""The embedded cluster's object journal (cluster.journal): what was answered is what comes back
after a restart, resourceVersions keep growing, old watches get a clean 410, and a write the
disk cannot take answers 507 and changes nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from tests.cluster.apiserver_helpers import pod_manifest
from tests.conftest import require


def spec(data_dir: Path) -> ClusterSpec:
    return ClusterSpec(name="j", uid="0a0b", token="tok", node_count=2, data_dir=data_dir)


def client(c: EmbeddedCluster) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=c.url, headers={"Authorization": "Bearer tok"}, timeout=10)


async def test_objects_resource_versions_and_address_survive_a_restart(tmp_path: Path) -> None:
    first = EmbeddedCluster(spec(tmp_path))
    url = await first.start()
    async with client(first) as http:
        made = [(await http.post("/api/v1/namespaces/default/pods", json=pod_manifest(f"p{i}"))).json()
                for i in range(5)]
        await http.delete("/api/v1/namespaces/default/pods/p4")
        rv = int((await http.get("/api/v1/pods")).json()["metadata"]["resourceVersion"])
    await first.stop(keep=True)

    second = EmbeddedCluster(spec(tmp_path))
    assert await second.start() == url
    try:
        async with client(second) as http:
            pods = (await http.get("/api/v1/namespaces/default/pods")).json()
            assert int(pods["metadata"]["resourceVersion"]) >= rv
            assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods["items"]} == \
                {m["metadata"]["name"]: m["metadata"]["uid"] for m in made[:4]}
            stale = await http.get("/api/v1/pods", params={"watch": "1", "resourceVersion": str(rv - 3)})
            assert '"code":410' in stale.text.replace(" ", "")
            again = (await http.post("/api/v1/namespaces/default/pods", json=pod_manifest("p9"))).json()
            assert int(again["metadata"]["resourceVersion"]) > rv
            assert second.restored >= 4
    finally:
        await second.stop()
    assert not (tmp_path / "objects.sqlite").exists()       # a delete takes the journal with it


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    require(done.returncode == 0, f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.root
async def test_a_full_disk_answers_507_and_loses_nothing_acknowledged(tiny_disk: Path) -> None:
    cluster = EmbeddedCluster(spec(tiny_disk))
    await cluster.start()
    acknowledged: list[str] = []
    async with client(cluster) as http:
        for i in range(400):
            body = pod_manifest(f"big{i}")
            body["metadata"]["annotations"] = {"filler": "x" * 4000}
            answer = await http.post("/api/v1/namespaces/default/pods", json=body)
            if answer.status_code != 201:
                break
            acknowledged.append(f"big{i}")
        assert answer.status_code == 507, answer.text
        assert "could not be stored" in answer.json()["message"]
        refused = f"big{len(acknowledged)}"
        assert (await http.get(f"/api/v1/namespaces/default/pods/{refused}")).status_code == 404
    await cluster.stop(keep=True)
    again = EmbeddedCluster(spec(tiny_disk))
    await again.start()
    try:
        names = {p["metadata"]["name"] for p in again.store.list_snapshots("pods", "default")[0]}
        assert set(acknowledged) <= names and refused not in names
    finally:
        await again.stop(keep=True)


async def test_a_start_killed_while_seeding_leaves_no_half_cluster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A conductor killed in the middle of creating a cluster left some of its nodes in the
    journal; the next host restored those and the bay came up a node short."""
    original = EmbeddedCluster._create_node
    made: list[str] = []

    def dies_at_the_second_worker(self: EmbeddedCluster, name: str, *args: object, **kw: object) -> None:
        if len(made) == 2:
            raise SystemExit("killed")
        made.append(name)
        original(self, name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(EmbeddedCluster, "_create_node", dies_at_the_second_worker)
    with pytest.raises(SystemExit):
        await EmbeddedCluster(spec(tmp_path)).start()
    monkeypatch.setattr(EmbeddedCluster, "_create_node", original)
    again = EmbeddedCluster(spec(tmp_path))
    await again.start()
    try:
        assert again.restored == 0
        async with client(again) as http:
            nodes = (await http.get("/api/v1/nodes")).json()["items"]
        assert len(nodes) == 3     # one master and both workers
    finally:
        await again.stop()
