"""A whole Bayport in the test's event loop: API on a real port, conductor, bus, database.

``run_stack`` is what ``bayport serve`` does, minus the process: tests talk to it
over real HTTP exactly as a client would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bayport.api.app import build_state, create_app
from bayport.api.state import ApiState
from bayport.cli import runner
from bayport.conductor.service import ConductorService
from bayport.config import Settings
from bayport.db.base import make_engine, make_sessionmaker
from bayport.db.tokens import bootstrap_admin
from bayport.drivers.local import LocalDriver
from bayport.rpc import get_transport

TERMINAL = {"CREATE_COMPLETE", "CREATE_FAILED", "UPDATE_COMPLETE", "UPDATE_FAILED", "DELETE_FAILED"}


@dataclass
class Stack:
    url: str
    admin_token: str
    settings: Settings
    conductor: ConductorService
    state: ApiState

    def client(self, token: str | None = None, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30.0,
                                 headers={"X-Auth-Token": token or self.admin_token, **headers})

    async def token(self, project: str, user: str = "user", role: str = "member") -> str:
        async with self.client() as c:
            resp = await c.post("/v1/tokens", json={"project": project, "user": user, "role": role})
            resp.raise_for_status()
            return str(resp.json()["token"])

    async def baymodel(self, client: httpx.AsyncClient, name: str = "k8s", **fields: Any
                       ) -> dict[str, Any]:
        resp = await client.post("/v1/baymodels", json={"name": name, **fields})
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    async def bay(self, client: httpx.AsyncClient, baymodel: str, name: str = "testbay",
                  node_count: int = 1, wait: bool = True, **fields: Any) -> dict[str, Any]:
        resp = await client.post("/v1/bays", json={"name": name, "baymodel_id": baymodel,
                                                   "node_count": node_count, **fields})
        assert resp.status_code == 201, resp.text
        bay = dict(resp.json())
        return await self.wait_bay(client, bay["uuid"]) if wait else bay

    async def wait_bay(self, client: httpx.AsyncClient, ident: str, timeout: float = 20.0,
                       gone: bool = False) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            resp = await client.get(f"/v1/bays/{ident}")
            if gone and resp.status_code == 404:
                return {}
            body = dict(resp.json())
            if not gone and body.get("status") in TERMINAL:
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"bay {ident} still {body.get('status')} after {timeout}s")
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def run_stack(data_dir: Path, **overrides: Any) -> AsyncIterator[Stack]:
    # Simulated pods unless a test asks for podman: most tests run manifests whose images
    # (kubernetes/redis:v1 …) cannot be pulled here.
    overrides.setdefault("default_runtime", "simulated")
    overrides.setdefault("heartbeat_interval", 0.5)
    settings = Settings(data_dir=data_dir, bind="127.0.0.1:0", **overrides)
    await runner.upgrade_db(settings)
    engine = make_engine(settings.effective_database_url)
    async with make_sessionmaker(engine)() as session:
        token, _ = await bootstrap_admin(session, settings.admin_token_file)
    await engine.dispose()
    transport = get_transport(settings.transport_url)
    await transport.connect()
    conductor = await runner.start_conductor(settings, transport)
    state = await build_state(settings, transport)
    config = uvicorn.Config(create_app(state), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", loop="none")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Stack(url=f"http://127.0.0.1:{port}", admin_token=token, settings=settings,
                    conductor=conductor, state=state)
    finally:
        server.should_exit = True
        await task
        local = conductor.drivers.get("local")
        if isinstance(local, LocalDriver):
            await local.remove_all()     # a test leaves no containers behind; serve's stop would
        await conductor.stop()
        await state.aclose()
        await transport.close()


async def kube_request(kubeconfig: str, method: str, path: str, body: Any = None) -> httpx.Response:
    """``method path`` on a bay's Kubernetes API as its kubeconfig says: server, pinned CA, token."""
    import base64
    import ssl

    import yaml

    cfg = yaml.safe_load(kubeconfig)
    cluster = cfg["clusters"][0]["cluster"]
    token = cfg["users"][0]["user"]["token"]
    verify: ssl.SSLContext | bool = True
    if "certificate-authority-data" in cluster:
        verify = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    async with httpx.AsyncClient(verify=verify, timeout=10) as k:
        return await k.request(method, f"{cluster['server']}{path}", json=body,
                               headers={"Authorization": f"Bearer {token}"})


async def kube_get(kubeconfig: str, path: str) -> httpx.Response:
    return await kube_request(kubeconfig, "GET", path)


async def kube_post(kubeconfig: str, path: str, body: Any) -> httpx.Response:
    return await kube_request(kubeconfig, "POST", path, body)
