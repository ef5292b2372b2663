"""Helpers shared by the job-service tests: a bay with a tenant, fast templates, waiting on a job."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx

from bayport.jobs.template import DEFAULT_TEMPLATE
from tests.stack import Stack

TERMINAL = ("Succeeded", "Failed")
SEED_BODY: dict[str, Any] = {"cmd": "cp -r /src/* /dest/",
                             "vols": [{"pvc": "gluster-exam", "mount": "/dest"},
                                      {"pvc": "nfs-exam", "mount": "/src"}]}


def fast_template(duration: str = "0", exit_code: str | None = None, **spec: Any) -> dict[str, Any]:
    """The seed's template whose pods run ``duration`` seconds in the simulated runtime."""
    template = copy.deepcopy(DEFAULT_TEMPLATE)
    annotations = {"bayport.io/simulated-duration": duration}
    if exit_code is not None:
        annotations["bayport.io/simulated-exit-code"] = exit_code
    template["spec"]["template"]["metadata"] = {"annotations": annotations}
    template["spec"].update(spec)
    return template


async def bay(stack: Stack, client: httpx.AsyncClient, name: str = "jobbay") -> dict[str, Any]:
    models = (await client.get("/v1/baymodels")).json()["baymodels"]
    if not any(m["name"] == "jobs-k8s" for m in models):
        await stack.baymodel(client, "jobs-k8s")
    return await stack.bay(client, "jobs-k8s", name=name)


async def tenant(client: httpx.AsyncClient, bay_ident: str, tenant_id: str | None = None,
                 template: dict[str, Any] | None = None, claims: tuple[str, ...] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "exam", "bay": bay_ident}
    if tenant_id is not None:
        body["id"] = tenant_id
    resp = await client.post("/v1/tenants", json=body)
    assert resp.status_code == 201, resp.text
    created = dict(resp.json())
    if template is not None:
        put = await client.put(f"/v1/tenants/{created['id']}/template", json=template)
        assert put.status_code == 200, put.text
    for claim in claims:
        vol = await client.post(f"/v1/tenants/{created['id']}/volumes", json={"name": claim, "size": "1Gi"})
        assert vol.status_code == 201, vol.text
    return created


async def wait_job(client: httpx.AsyncClient, uuid: str, statuses: tuple[str, ...] = TERMINAL,
                   timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get(f"/v1/jobs/{uuid}")
        assert resp.status_code == 200, resp.text
        body = dict(resp.json())
        if body["status"] in statuses:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {uuid} still {body['status']} after {timeout}s: {body}")
        await asyncio.sleep(0.01)
