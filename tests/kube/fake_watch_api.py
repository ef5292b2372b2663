"""A Kubernetes-API-shaped HTTP server with faults on demand, for the informer tests: list and
watch of pods across namespaces (``/api/v1/pods``), resumable from a resourceVersion, with
bookmarks when asked for, and three faults a real cluster shows only by bad luck: watches
answered 410 Gone (``gone_watches``), watches accepted and never answered (``stall_watches``:
the request is read, not a byte comes back), and a server that goes away. It fakes the cluster
only at its HTTP boundary (kopf's kmock does the same); served by uvicorn on 127.0.0.1:0.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

GONE = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version", "reason": "Expired", "code": 410}


@dataclass
class FakeWatchAPI:
    token: str = "fake-token"
    gone_watches: int = 0          # the next N watch requests get an ERROR 410 event
    stall_watches: int = 0         # the next N watch requests are never answered
    bookmark_every: float | None = None
    version: int = 1
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    lists: int = 0
    watches: int = 0
    open_watches: int = 0
    watch_params: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    _queues: set[asyncio.Queue[tuple[int, str, dict[str, Any]]]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/api/v1/pods", self.pods_endpoint)])

    # --- the cluster's contents -----------------------------------------------------------------

    def add(self, name: str, namespace: str = "default", labels: dict[str, str] | None = None) -> str:
        uid = str(uuid.uuid4())
        self.pods[(namespace, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": dict(labels or {})},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": "Pending"}}
        self._emit("ADDED", self.pods[(namespace, name)])
        return uid

    def modify(self, name: str, namespace: str = "default", phase: str = "Running") -> None:
        self.pods[(namespace, name)]["status"]["phase"] = phase
        self._emit("MODIFIED", self.pods[(namespace, name)])

    def delete(self, name: str, namespace: str = "default") -> None:
        self._emit("DELETED", self.pods.pop((namespace, name)))

    def _emit(self, kind: str, pod: dict[str, Any]) -> None:
        self.version += 1
        pod["metadata"]["resourceVersion"] = str(self.version)
        entry = (self.version, kind, copy.deepcopy(pod))
        self.history.append(entry)
        for queue in self._queues:
            queue.put_nowait(entry)

    # --- HTTP -----------------------------------------------------------------------------------

    async def pods_endpoint(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({**GONE, "code": 401, "reason": "Unauthorized", "message": "no"}, 401)
        if request.query_params.get("watch") not in ("true", "1"):
            self.lists += 1
            return JSONResponse({"kind": "PodList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": str(self.version)},
                                 "items": [copy.deepcopy(p) for p in self.pods.values()]})
        self.watches += 1
        self.watch_params.append(dict(request.query_params))
        if self.stall_watches:
            self.stall_watches -= 1
            self.open_watches += 1
            try:
                await asyncio.Event().wait()   # read, accepted, never answered
            finally:
                self.open_watches -= 1
        if self.gone_watches:
            self.gone_watches -= 1
            return Response(json.dumps({"type": "ERROR", "object": GONE}) + "\n",
                            media_type="application/json")
        since = int(request.query_params.get("resourceVersion") or 0)
        bookmarks = request.query_params.get("allowWatchBookmarks") == "true"
        timeout = float(request.query_params.get("timeoutSeconds") or 3600)
        return StreamingResponse(self._stream(since, bookmarks, timeout), media_type="application/json")

    async def _stream(self, since: int, bookmarks: bool, timeout: float) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[tuple[int, str, dict[str, Any]]] = asyncio.Queue()
        self._queues.add(queue)
        backlog = [e for e in self.history if e[0] > since]
        self.open_watches += 1
        interval = self.bookmark_every if bookmarks and self.bookmark_every else None
        try:
            for _, kind, obj in backlog:
                yield _line(kind, obj)
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        _, kind, obj = await asyncio.wait_for(queue.get(), interval)
                    except TimeoutError:
                        yield _line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1",
                                                 "metadata": {"resourceVersion": str(self.version)}})
                        continue
                    yield _line(kind, obj)
        except TimeoutError:
            return
        finally:
            self.open_watches -= 1
            self._queues.discard(queue)


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": kind, "object": obj}) + "\n").encode()


@asynccontextmanager
async def serve(api: FakeWatchAPI) -> AsyncIterator[FakeWatchAPI]:
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
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)
