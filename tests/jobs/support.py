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


async def kube(stack: Stack, bay_uuid: str) -> Any:
    """The conductor's own lightkube client for the bay (the cluster as Bayport sees it)."""
    from bayport.conductor.jobs import operations

    return await operations(stack.conductor).clients.get(bay_uuid)


class TenantService:
    """A stand-in for the seed's TENANT_SERVICE_URL on loopback: 200 for known ids, else 404."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.paths: list[str] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> TenantService:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/service/v1/tenants"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ", 2)[1].decode()
        self.paths.append(path)
        found = path.rsplit("/", 1)[-1] in self.known
        body = b'{"id": "ok"}' if found else b'{"error": "not found"}'
        status = b"200 OK" if found else b"404 Not Found"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()
