"""Production re-hosting keeps a bay's objects: with Bayport on PostgreSQL, embedded clusters
journal there (cluster.journal_pg), so when the conductor hosting a bay stops, another conductor
with a different state dir (another machine) re-hosts it with every namespace and pod, same
uids, and the bay's new kubeconfig reaches them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bayport.cli import runner
from bayport.config import Settings
from bayport.db.models import BayRow
from bayport.drivers.local import LocalDriver
from tests.cluster.apiserver_helpers import pod_manifest
from tests.pg import fresh_database
from tests.stack import kube_get, kube_post, run_stack

pytestmark = pytest.mark.postgres


async def test_another_conductor_rehosts_a_bay_with_all_its_objects(tmp_path: Path) -> None:
    async with fresh_database() as url, run_stack(tmp_path / "a", database_url=url) as stack, \
            stack.client() as c:
        await stack.baymodel(c, "k8s", labels={"runtime": "simulated"})
        bay = await stack.bay(c, "k8s", name="kept")
        assert bay["status"] == "CREATE_COMPLETE", bay
        kubeconfig = (await c.get(f"/v1/bays/{bay['uuid']}/config")).text
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}}
        assert (await kube_post(kubeconfig, "/api/v1/namespaces", ns)).status_code == 201
        made = {}
        for i in range(3):
            pod = (await kube_post(kubeconfig, "/api/v1/namespaces/acme/pods",
                                   pod_manifest(f"p{i}"))).json()
            made[pod["metadata"]["name"]] = pod["metadata"]["uid"]

        other = await runner.start_conductor(
            Settings(data_dir=tmp_path / "b", database_url=url, heartbeat_interval=0.5,
                     default_runtime="simulated"), stack.conductor.transport)
        try:
            await stack.conductor.stop()         # the first host goes away
            deadline = time.monotonic() + 30
            while True:
                async with stack.state.sessionmaker() as session:
                    row = await session.get(BayRow, bay["uuid"])
                assert row is not None
                if row.host == other.id and "re-hosted" in (row.status_reason or ""):
                    break
                assert time.monotonic() < deadline, (row.host, row.status_reason)
                await asyncio.sleep(0.1)
            assert "objects restored" in (row.status_reason or ""), row.status_reason
            fresh = (await c.get(f"/v1/bays/{bay['uuid']}/config")).text
            pods = (await kube_get(fresh, "/api/v1/namespaces/acme/pods")).json()
            assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods["items"]} == made
            assert not (tmp_path / "b" / "bays" / bay["uuid"] / "objects.sqlite").exists()
        finally:
            local = other.drivers.get("local")
            if isinstance(local, LocalDriver):
                await local.remove_all()
            await other.stop()
