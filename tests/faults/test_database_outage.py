"""A PostgreSQL outage, made by cutting a proxy between Bayport and the database: requests
answer 503 with Retry-After (never 500); the bay's own API, whose objects are journalled in
the same database, refuses writes with 503 and keeps what it had answered; ports of pods
deleted as the outage began are freed once it ends; everything acknowledged is still there.

Before: a 12 s outage answered 500 to pod and job creates, and 24 ports of finished pods were
never released ("release … failed" once, never retried); 11 were still ACTIVE 8 minutes later.
"""

from __future__ import annotations

import asyncio

import pytest
from lightkube.resources.core_v1 import Pod
from sqlalchemy.engine import make_url

from tests.faults.proxy import proxied
from tests.kube.workload_helpers import cluster
from tests.network.controller_support import networked_bay, pod, ports, wait_for, wait_pod
from tests.pg import fresh_database
from tests.stack import kube_request, run_stack

pytestmark = pytest.mark.postgres

PODS = 6


async def test_an_outage_answers_503_and_frees_every_port_afterwards(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with fresh_database() as url:
        real = make_url(url)
        async with proxied(real.host or "127.0.0.1", real.port or 5432) as proxy:
            via_proxy = real.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
            # The lease outlives the outage (heartbeat 2 s → 6 s), as production's default does.
            async with run_stack(tmp_path, database_url=via_proxy, heartbeat_interval=2.0) as stack, \
                    stack.client() as c:
                bay = await networked_bay(stack, c)
                kubeconfig = (await c.get(f"/v1/bays/{bay['uuid']}/config")).text
                async with cluster(stack, bay["uuid"]) as k8s:
                    for i in range(PODS):
                        await k8s.create(pod(f"p{i}"))
                    for i in range(PODS):
                        await wait_pod(k8s, f"p{i}")
                    await wait_for(lambda: _count(stack, bay["uuid"], PODS), "ports of every pod")

                    # Deleted, then the database goes at once: the controller's releases fail.
                    for i in range(PODS // 2):
                        await k8s.delete(Pod, f"p{i}", namespace="default")
                    proxy.cut()
                    for method, path, body in (("POST", "/v1/baymodels", {"name": "during"}),
                                               ("GET", "/v1/bays", None),
                                               ("GET", f"/v1/bays/{bay['uuid']}", None),
                                               ("POST", "/v1/pods", {"bay_uuid": bay["uuid"],
                                                                     "manifest": "kind: Pod"})):
                        resp = await c.request(method, path, json=body)
                        assert resp.status_code == 503, (path, resp.status_code, resp.text)
                        assert resp.headers["Retry-After"] == "5"
                        assert "database is unavailable" in resp.json()["errors"][0]["detail"]
                    # The bay's own API keeps its objects in the database too: no write while it is
                    # away (503), and nothing it answered before is lost.
                    refused = await kube_request(kubeconfig, "DELETE",
                                                 f"/api/v1/namespaces/default/pods/p{PODS - 1}")
                    assert refused.status_code == 503, refused.text
                    await asyncio.sleep(3.0)  # past every handler's own retries
                    proxy.restore()

                    await wait_for(lambda: _count(stack, bay["uuid"], PODS - PODS // 2),
                                   "ports of deleted pods released after the outage", timeout=30)
                    held = {p.name for p in await ports(stack, bay["uuid"])}
                    assert held == {f"p{i}" for i in range(PODS // 2, PODS)}
                    listed = await c.get("/v1/bays")
                    assert listed.status_code == 200
                    assert [b["uuid"] for b in listed.json()["bays"]] == [bay["uuid"]]
                    assert (await c.post("/v1/baymodels", json={"name": "after"})).status_code == 201
                    # The bay's journal made its connection again: its writes work.
                    again = await kube_request(kubeconfig, "DELETE",
                                               f"/api/v1/namespaces/default/pods/p{PODS - 1}")
                    assert again.status_code == 200, again.text


async def _count(stack, bay_uuid: str, expected: int) -> bool:  # type: ignore[no-untyped-def]
    try:
        return len(await ports(stack, bay_uuid)) == expected
    except Exception:  # the database may still be coming back
        return False
