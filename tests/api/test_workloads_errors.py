"""Every way a workload request can be wrong gives a 400 (or 403/404/409) that names the field,
and nothing is created: no row in Bayport, no object in the bay's cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod, ReplicationController, Service
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from bayport.db.models import BayRow
from bayport.kube import fetch
from tests.kube import seed
from tests.kube.local_http import serve
from tests.kube.workload_helpers import cluster, manifest, ready_bay
from tests.stack import Stack, run_stack


@pytest.fixture
async def open_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack that may fetch manifests from loopback (BAYPORT_ALLOW_PRIVATE_MANIFEST_URLS=true)."""
    async with run_stack(tmp_path, allow_private_manifest_urls=True) as s:
        yield s


async def assert_nothing_created(stack: Stack, bay_uuid: str) -> None:
    async with stack.client() as c:
        for plural in ("pods", "services", "rcs"):
            body = (await c.get(f"/v1/{plural}", params={"show_deleted": "true"})).json()
            assert body[plural] == [], body
    async with cluster(stack, bay_uuid) as k8s:
        for resource in (Pod, Service, ReplicationController):
            objects = [o async for o in k8s.list(resource, namespace="*")]
            found = [o for o in objects if o.metadata is None or o.metadata.name != "kubernetes"]
            assert found == [], found


async def post_error(c: Any, plural: str, body: dict[str, Any], status: int = 400) -> dict[str, Any]:
    resp = await c.post(f"/v1/{plural}", json=body)
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["errors"][0]
    return err


MISSING_IMAGE = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n"
BAD_YAML = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n   labels: {a: b}\n"


async def test_bad_manifests_are_400s_naming_field_or_line_and_create_nothing(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c, node_count=1)
        cases: list[tuple[str, str, str, str]] = [
            ("pods", seed.REDIS_SENTINEL_SERVICE_V1BETA3, "kind", "takes a Pod"),
            ("services", seed.REDIS_MASTER_V1BETA3, "kind", "takes a Service"),
            ("rcs", seed.REDIS_MASTER_V1BETA3, "kind", "takes a ReplicationController"),
            ("pods", BAD_YAML, "manifest", "line 5, column 10"),
            ("pods", MISSING_IMAGE, "spec.containers[0].image", "spec.containers[0].image: Required value"),
            ("rcs", "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: r}\nspec: {}\n",
             "spec.template", "spec.template: Required value"),
            ("services", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{}]}\n",
             "spec.ports[0].port", "Required value"),
            ("pods", manifest("Pod", "p", namespace="nope"), "metadata.namespace",
             "namespace 'nope' does not exist"),
            ("services", manifest("Service", "s", namespace="nope"), "metadata.namespace", "'nope'"),
            ("rcs", manifest("ReplicationController", "r", namespace="nope"), "metadata.namespace", "'nope'"),
            ("pods", manifest("Pod", "p", image=""), "spec.containers[0].image", "Required value"),
        ]
        for plural, text, field, words in cases:
            err = await post_error(c, plural, {"bay_uuid": "testbay", "manifest": text})
            assert err["field"] == field, (plural, err)
            assert words in err["detail"], (plural, err)
        yaml_err = await post_error(c, "pods", {"bay_uuid": "testbay", "manifest": BAD_YAML})
        assert (yaml_err["line"], yaml_err["column"]) == (5, 10)
        for body, field in (({"bay_uuid": "testbay"}, "manifest"),
                            ({"bay_uuid": "testbay", "manifest": "x", "manifest_url": "http://a/"},
                             "manifest"),
                            ({"bay_uuid": "nope", "manifest": MISSING_IMAGE}, "bay_uuid"),
                            ({"manifest": MISSING_IMAGE}, "bay_uuid"),
                            ({"bay_uuid": "testbay", "manifest": "x", "extra": 1}, "extra")):
            assert (await post_error(c, "pods", body))["field"] == field
        await assert_nothing_created(stack, bay["uuid"])


async def test_the_clusters_own_refusal_is_a_400_with_its_field_and_no_row(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c, node_count=1)
        # Valid to Bayport's checks, refused by the cluster's validation (a 422 there).
        text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: Sometimes\n"
                "  containers:\n  - name: c\n    image: i\n")
        resp = await c.post("/v1/pods", json={"bay_uuid": "testbay", "manifest": text})
        assert resp.status_code == 400, resp.text
        err = resp.json()["errors"][0]
        assert err["code"] == "ClusterAPIError" and err["field"] == "spec.restartPolicy", err
        assert "Sometimes" in err["detail"]
        await assert_nothing_created(stack, bay["uuid"])


async def test_bay_must_be_ready(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c, node_count=1)
        async with stack.state.sessionmaker() as session:
            await session.execute(update(BayRow).where(BayRow.uuid == bay["uuid"])
                                  .values(status="CREATE_FAILED"))
            await session.commit()
        err = await post_error(c, "pods", {"bay_uuid": "testbay", "manifest": manifest("Pod", "p")}, 409)
        assert err["field"] == "bay_uuid" and "CREATE_FAILED" in err["detail"]


async def test_other_projects_workloads_are_404_and_readers_cannot_write(stack: Stack) -> None:
    async with stack.client() as admin:
        await ready_bay(stack, admin, node_count=1)
    alice, bob = await stack.token("alice"), await stack.token("bob")
    reader = await stack.token("alice", user="ro", role="reader")
    async with stack.client(alice) as a, stack.client(bob) as b, stack.client(reader) as r:
        await stack.baymodel(a, "k8s")
        await stack.bay(a, "k8s", name="abay", node_count=1)
        pod = await a.post("/v1/pods", json={"bay_uuid": "abay", "manifest": manifest("Pod", "mine")})
        assert pod.status_code == 201, pod.text
        uuid = pod.json()["uuid"]
        assert pod.json()["project_id"] == "alice"
        assert (await b.get(f"/v1/pods/{uuid}")).status_code == 404
        assert (await b.get("/v1/pods")).json()["pods"] == []
        assert (await b.delete(f"/v1/pods/{uuid}")).status_code == 404
        assert (await b.patch(f"/v1/pods/{uuid}", json=[{"op": "replace", "path": "/manifest",
                                                          "value": "x"}])).status_code == 404
        err = await post_error(b, "pods", {"bay_uuid": "abay", "manifest": manifest("Pod", "x")})
        assert err["field"] == "bay_uuid"
        err = await post_error(b, "pods", {"bay_uuid": "testbay", "manifest": manifest("Pod", "x")})
        assert err["field"] == "bay_uuid"  # the admin's bay is not Bob's either
        assert (await r.get(f"/v1/pods/{uuid}")).status_code == 200
        assert (await r.post("/v1/pods", json={"bay_uuid": "abay",
                                               "manifest": manifest("Pod", "y")})).status_code == 403
        assert (await r.delete(f"/v1/pods/{uuid}")).status_code == 403
        assert (await r.patch(f"/v1/pods/{uuid}", json=[])).status_code == 403
        assert len((await r.get("/v1/pods")).json()["pods"]) == 1


# --- manifest_url -----------------------------------------------------------------------------------

async def _seed(request: Request) -> Response:
    return PlainTextResponse(seed.REDIS_MASTER_V1BETA3)


async def _huge(request: Request) -> Response:
    return PlainTextResponse("# padding\n" * 120_000)


async def _slow(request: Request) -> Response:
    async def body():  # type: ignore[no-untyped-def]
        yield b"apiVersion: v1\n"
        await asyncio.sleep(2)
        yield b"kind: Pod\n"
    return StreamingResponse(body())


MANIFESTS = Starlette(routes=[Route("/redis-master.yaml", _seed), Route("/huge", _huge),
                              Route("/slow", _slow)])


async def test_manifest_url_from_a_local_server(open_stack: Stack, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    stack = open_stack
    async with stack.client() as c, serve(MANIFESTS) as url:
        bay = await ready_bay(stack, c, node_count=1)
        resp = await c.post("/v1/pods", json={"bay_uuid": "testbay",
                                              "manifest_url": f"{url}/redis-master.yaml"})
        assert resp.status_code == 201, resp.text
        pod = resp.json()
        assert pod["manifest_url"] == f"{url}/redis-master.yaml"
        assert pod["manifest"] == seed.REDIS_MASTER_V1BETA3 and pod["name"] == "redis-master"
        assert (await c.delete(f"/v1/pods/{pod['uuid']}")).status_code == 204
        monkeypatch.setattr(fetch, "FETCH_TIMEOUT", 0.5)
        for path, words in (("/huge", "larger than"), ("/slow", "within 0.5 s"), ("/missing", "HTTP 404")):
            err = await post_error(c, "pods", {"bay_uuid": "testbay", "manifest_url": f"{url}{path}"})
            assert err["field"] == "manifest_url" and words in err["detail"], err
        for target in ("file:///etc/passwd", "ftp://127.0.0.1/x"):
            err = await post_error(c, "pods", {"bay_uuid": "testbay", "manifest_url": target})
            assert err["field"] == "manifest_url" and "only http and https" in err["detail"]
    async with stack.client() as c:
        gone = f"{url}/redis-master.yaml"  # the server has stopped: unreachable
        err = await post_error(c, "pods", {"bay_uuid": "testbay", "manifest_url": gone})
        assert err["field"] == "manifest_url" and "cannot fetch" in err["detail"], err
    await assert_nothing_created(stack, bay["uuid"])


async def test_private_manifest_urls_are_refused_by_default(stack: Stack) -> None:
    async with stack.client() as c, serve(MANIFESTS) as url:
        bay = await ready_bay(stack, c, node_count=1)
        for target in (f"{url}/redis-master.yaml", url.replace("127.0.0.1", "localhost"),
                       "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x"):
            err = await post_error(c, "pods", {"bay_uuid": "testbay", "manifest_url": target})
            assert err["field"] == "manifest_url" and "refused" in err["detail"], err
        await assert_nothing_created(stack, bay["uuid"])
