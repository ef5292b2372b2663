"""A tiny Kubernetes-API-shaped HTTP server for the CNI tests: list and watch of pods
by ``fieldSelector=metadata.name`` with bearer-token auth, served by uvicorn on
127.0.0.1 port 0. It fakes only the cluster API at its HTTP boundary; the embedded
cluster replaces it once it serves the same endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class FakeKubeAPI:
    def __init__(self, token: str) -> None:
        self.token = token
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 1
        self.watchers: list[tuple[str, str, asyncio.Queue[dict[str, Any]]]] = []
        self.requests: list[str] = []
        self.app = Starlette(routes=[Route("/api/v1/namespaces/{namespace}/pods", self.pods_endpoint)])
        self.url = ""

    def add_pod(self, namespace: str, name: str, annotations: dict[str, str] | None = None) -> str:
        uid = str(uuid.uuid4())
        self.pods[(namespace, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid,
                         "annotations": dict(annotations or {})},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        self._emit("ADDED", namespace, name)
        return uid

    def annotate(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self.pods[(namespace, name)]["metadata"]["annotations"].update(annotations)
        self._emit("MODIFIED", namespace, name)

    def _emit(self, kind: str, namespace: str, name: str) -> None:
        self.version += 1
        pod = copy.deepcopy(self.pods[(namespace, name)])
        pod["metadata"]["resourceVersion"] = str(self.version)
        for ns, watched, queue in self.watchers:
            if (ns, watched) == (namespace, name):
                queue.put_nowait({"type": kind, "object": pod})

    async def pods_endpoint(self, request: Request) -> Response:
        self.requests.append(str(request.url.query))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"kind": "Status", "code": 401, "reason": "Unauthorized"}, 401)
        namespace = request.path_params["namespace"]
        selector = request.query_params.get("fieldSelector", "")
        if not selector.startswith("metadata.name="):
            return JSONResponse({"kind": "Status", "code": 400}, 400)
        name = selector.partition("=")[2]
        if request.query_params.get("watch") in ("true", "1"):
            return StreamingResponse(self._watch(namespace, name,
                                                 float(request.query_params.get("timeoutSeconds", 30))),
                                     media_type="application/json")
        items = [copy.deepcopy(p) for key, p in self.pods.items() if key == (namespace, name)]
        return JSONResponse({"kind": "PodList", "apiVersion": "v1", "items": items,
                             "metadata": {"resourceVersion": str(self.version)}})

    async def _watch(self, namespace: str, name: str, seconds: float) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        entry = (namespace, name, queue)
        self.watchers.append(entry)
        try:
            async with asyncio.timeout(seconds):
                while True:
                    yield (json.dumps(await queue.get()) + "\n").encode()
        except TimeoutError:
            return
        finally:
            self.watchers.remove(entry)


@asynccontextmanager
async def serve(api: FakeKubeAPI) -> AsyncIterator[FakeKubeAPI]:
    config = uvicorn.Config(api.app, host="127.0.0.1", port=0, log_level="warning", ws="none",
                            lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        api.url = f"http://127.0.0.1:{port}"
        yield api
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
