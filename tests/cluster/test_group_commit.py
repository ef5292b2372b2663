"""Group commit (cluster.group_commit): concurrent writes share transactions, nothing is answered
or watched before it is durable, and a batch the journal refuses is undone in memory (its
requests get 503, no watcher hears of it), after which writes go through one at a time until the
journal takes them again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.cluster.journal import JournalError, Write
from tests.cluster.apiserver_helpers import pod_manifest

PODS = "/api/v1/namespaces/default/pods"


def spec(data_dir: Path) -> ClusterSpec:
    return ClusterSpec(name="g", uid="0c0d", token="tok", node_count=2, data_dir=data_dir)


def client(c: EmbeddedCluster) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=c.url, headers={"Authorization": "Bearer tok"}, timeout=10)


async def names_after_restart(data_dir: Path) -> set[str]:
    again = EmbeddedCluster(spec(data_dir))
    await again.start()
    try:
        return {p["metadata"]["name"] for p in again.store.list_snapshots("pods", "default")[0]}
    finally:
        await again.stop(keep=True)


async def test_concurrent_writes_share_transactions_and_all_are_kept(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(spec(tmp_path))
    await cluster.start()
    group = cluster.store.group
    assert group is not None
    before, written = group.batches, cluster.store.resource_version
    async with client(cluster) as http:
        answers = await asyncio.gather(*(http.post(PODS, json=pod_manifest(f"c{i}")) for i in range(60)))
    assert [a.status_code for a in answers] == [201] * 60
    writes = cluster.store.resource_version - written
    batches = group.batches - before
    assert 0 < batches < writes, (batches, writes)
    await cluster.stop(keep=True)
    assert {f"c{i}" for i in range(60)} <= await names_after_restart(tmp_path)


async def test_a_refused_batch_is_undone_and_writing_resumes(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(spec(tmp_path))
    await cluster.start()
    group = cluster.store.group
    assert group is not None
    journal = group.journal
    real, real_one = journal.record_many, journal.record
    broken = False

    def flaky(writes: Sequence[Write]) -> None:
        if broken:
            raise JournalError("cluster store: disk I/O error")
        real(writes)

    def flaky_one(plural: str, namespace: str, name: str, rv: int, obj: dict[str, Any] | None) -> None:
        flaky([Write(plural, namespace, name, rv, obj)])

    journal.record_many = flaky  # type: ignore[method-assign]
    journal.record = flaky_one  # type: ignore[method-assign]
    try:
        async with client(cluster) as http:
            assert (await http.post(PODS, json=pod_manifest("kept"))).status_code == 201
            broken = True
            async with http.stream("GET", PODS, params={"watch": "1"}) as watch:
                lines = watch.aiter_lines()
                refused = await http.post(PODS, json=pod_manifest("refused"))
                assert refused.status_code == 503, refused.text
                assert "could not be stored" in refused.json()["message"]
                assert (await http.get(f"{PODS}/refused")).status_code == 404
                # While refused, a write is tried synchronously and changes nothing when it fails.
                assert (await http.post(PODS, json=pod_manifest("still-refused"))).status_code == 503
                assert (await http.get(f"{PODS}/still-refused")).status_code == 404
                broken = False
                assert (await http.post(PODS, json=pod_manifest("through"))).status_code == 201
                seen: list[str] = []
                while "through" not in seen:
                    seen.append(json.loads(await anext(lines))["object"]["metadata"]["name"])
                assert not {"refused", "still-refused"} & set(seen), seen   # never heard of
            assert group.accepting
            answers = await asyncio.gather(*(http.post(PODS, json=pod_manifest(f"after{i}"))
                                             for i in range(10)))
            assert [a.status_code for a in answers] == [201] * 10
    finally:
        journal.record_many, journal.record = real, real_one  # type: ignore[method-assign]
    await cluster.stop(keep=True)
    names = await names_after_restart(tmp_path)
    assert {"kept", "through", *(f"after{i}" for i in range(10))} <= names
    assert not {"refused", "still-refused"} & names
