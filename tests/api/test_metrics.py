"""/metrics: 401 without a token, 403 for a member, Prometheus text for an admin with the
request, RPC, conductor and object metrics; public when configured."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.stack import Stack, run_stack


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_metrics_need_an_admin_and_show_the_work(stack: Stack) -> None:
    member = await stack.token("p1")
    async with stack.client() as admin, stack.client(member) as m:
        await stack.baymodel(admin, "k8s")
        await stack.bay(admin, "k8s")
        assert (await m.get("/v1/bays")).status_code == 200
        resp = await m.get("/metrics")
        assert resp.status_code == 403, resp.text
        resp = await admin.get("/metrics", headers={"X-Auth-Token": ""})
        assert resp.status_code == 401
        resp = await admin.get("/metrics", headers={"X-Auth-Token": "bpt_nope"})
        assert resp.status_code == 401
        resp = await admin.get("/metrics")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        samples = _samples(resp.text)
    assert _value(samples, "bayport_http_requests_total", route="/v1/bays", method="GET",
                  status="200") >= 1
    assert _value(samples, "bayport_http_requests_total", route="/metrics", status="403") >= 1
    assert _value(samples, "bayport_http_request_duration_seconds_count", route="/v1/bays/{ident}",
                  method="GET") >= 1
    assert _value(samples, "bayport_rpc_client_requests_total", method="bay_create", type="cast",
                  outcome="ok") >= 1
    assert _value(samples, "bayport_rpc_server_handled_total", method="bay_create") >= 1
    assert ("bayport_conductor_inflight_operations", frozenset({("method", "bay_create")})) in samples
    assert _value(samples, "bayport_bays", status="CREATE_COMPLETE") == 1
    assert any(n == "process_cpu_seconds_total" for n, _ in samples)


async def test_pods_and_ipam_fill_are_counted(stack: Stack) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    async with stack.client() as c:
        await stack.baymodel(c, "k8s")
        bay = await stack.bay(c, "k8s")
        resp = await c.post("/v1/pods", json={"bay_uuid": bay["uuid"], "manifest": json.dumps(pod)})
        assert resp.status_code in (200, 201, 202), resp.text
        for _ in range(400):
            samples = _samples((await c.get("/metrics")).text)
            if _value(samples, "bayport_ipam_addresses_used", bay_uuid=bay["uuid"]) >= 1 \
                    and _value(samples, "bayport_pods", phase="Running") >= 1:
                break
            await asyncio.sleep(0.05)
        assert _value(samples, "bayport_pods", phase="Running") == 1
        assert _value(samples, "bayport_ipam_addresses_used", bay_uuid=bay["uuid"]) == 1
        assert _value(samples, "bayport_ipam_addresses_free", bay_uuid=bay["uuid"]) > 100


async def test_metrics_can_be_public(tmp_path: Path) -> None:
    async with run_stack(tmp_path, metrics_public=True) as s, s.client("") as anonymous:
        resp = await anonymous.get("/metrics", headers={"X-Auth-Token": ""})
        assert resp.status_code == 200 and "bayport_http_requests_total" in resp.text
