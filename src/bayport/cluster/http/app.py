"""The cluster's Kubernetes REST API as a lean ASGI application (served by uvicorn from ``host``).

One callable per cluster: bearer-token authentication and authorization (``access``: the admin,
reader and pod-network tokens), path and verb dispatch to the handlers
(``discovery``, ``objects``, ``watching``, ``subresources``), ApiError → metav1 Status in one
place, and streaming responses (watches, followed logs) that end when the client goes away, on
``timeoutSeconds`` or when the host shuts the cluster down (``close_streams``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bayport.cluster import openapi
from bayport.cluster.errors import ApiError, method_not_allowed, unauthorized
from bayport.cluster.group_commit import WRITTEN
from bayport.cluster.http import discovery, objects, subresources
from bayport.cluster.http.access import (
    ACCESS_REVIEW_PATH,
    Authenticator,
    Credential,
    access_review,
    authorize,
)
from bayport.cluster.http.context import ApiContext
from bayport.cluster.http.routing import Discovery, Target, parse_path
from bayport.cluster.http.watching import watch_stream
from bayport.cluster.http.wire import (
    Request,
    Response,
    Stream,
    error_response,
    json_response,
    negotiate,
)
from bayport.cluster.identity import ADMIN, CURRENT, NETWORK, READER

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEALTH = frozenset({"/healthz", "/readyz", "/livez"})
_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}


class ApiApp:
    """ASGI application serving one embedded cluster."""

    def __init__(self, ctx: ApiContext, token: str, *, reader_token: str | None = None,
                 network_token: str | None = None) -> None:
        """``token`` is full admin; ``reader_token`` may only read; ``network_token`` is the
        pod-network controller's, the one credential that may set the kuryr.org annotations."""
        self.ctx = ctx
        self.authenticator = Authenticator(
            [Credential(token, ADMIN), Credential(reader_token or "", READER),
             Credential(network_token or "", NETWORK)])
        self._streams: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        WRITTEN.set(0)
        try:
            result = await self._handle(scope, body)
        except ApiError as exc:
            result = error_response(exc)
        except Exception as exc:
            log.exception("internal error serving %s %s", scope.get("method"), scope.get("path"))
            result = error_response(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))
        written = WRITTEN.get()
        if written:          # answered only once durable (cluster.group_commit)
            try:
                await self.ctx.store.durable(written)
            except ApiError as exc:
                result = error_response(exc)
        if isinstance(result, Stream):
            await self._send_stream(result, receive, send)
            return
        accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
        result = negotiate(result, accept.decode("latin-1"))
        headers = [(b"content-type", result.content_type.encode()),
                   (b"content-length", str(len(result.body)).encode()), *result.headers]
        await send({"type": "http.response.start", "status": result.status, "headers": headers})
        await send({"type": "http.response.body", "body": result.body})

    async def _handle(self, scope: Scope, body: bytes) -> Response | Stream:
        # The kube-apiserver answers /version/, /api/v1/pods/ … as without the slash.
        path: str = scope["path"].rstrip("/") or "/"
        if path in _HEALTH or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        identity = self.authenticator.identify(header)
        if identity is None:
            raise unauthorized()
        req = Request.from_scope(scope, body)
        reset = CURRENT.set(identity)
        try:
            return await self._dispatch(req, path)
        finally:
            CURRENT.reset(reset)

    async def _dispatch(self, req: Request, path: str) -> Response | Stream:
        identity = CURRENT.get()
        assert identity is not None
        if path == ACCESS_REVIEW_PATH:
            if req.method != "POST":
                raise method_not_allowed()
            if "cbor" in req.content_type:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                               "unknown format - accepted media types include: application/json, "
                               "application/yaml, application/vnd.kubernetes.protobuf")
            return json_response(access_review(identity, req.json_body()), 201)
        target = None if path == "/version" or path.startswith("/openapi/") else parse_path(path)
        authorize(identity, req.method, target if isinstance(target, Target) else None, path,
                  watch_flag=req.flag("watch"))
        if path == "/version":
            return json_response(discovery.version_info(self.ctx.version))
        if target is None:
            return self._openapi(path)
        if isinstance(target, Discovery):
            return self._discovery(target)
        return await self._resource(req, target)

    def _openapi(self, path: str) -> Response:
        if path == "/openapi/v3":
            return Response(200, openapi.index_document())
        if path.startswith("/openapi/v3/"):
            doc = openapi.document_for_path(path[len("/openapi/v3/"):])
            if doc is not None:
                return Response(200, doc)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _discovery(self, target: Discovery) -> Response:
        if target.kind == "api":
            return json_response(discovery.api_versions(self.ctx.server_address))
        if target.kind == "apis":
            return json_response(discovery.api_group_list())
        if target.kind == "group":
            return json_response(discovery.api_group(target.group))
        return json_response(discovery.resource_list(target.group, target.version))

    async def _resource(self, req: Request, t: Target) -> Response | Stream:
        method = req.method
        sub = t.subresource
        if sub is None:
            return self._plain(req, t, method)
        if t.watch:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "status":
            if method == "GET":
                return objects.get_object(self.ctx, req, t)
            if method == "PUT":
                return objects.replace_object(self.ctx, req, t)
            if method == "PATCH":
                return objects.patch_object(self.ctx, req, t)
            raise method_not_allowed()
        if sub == "scale":
            return subresources.scale(self.ctx, req, t)
        if sub == "binding":
            return subresources.binding(self.ctx, req, t)
        if sub == "log":
            if method != "GET":
                raise method_not_allowed()
            return await subresources.logs(self.ctx, req, t)
        return subresources.finalize_namespace(self.ctx, req, t)

    def _plain(self, req: Request, t: Target, method: str) -> Response | Stream:
        verbs = t.resource.verbs
        if t.name is None:
            if method == "GET":
                if t.watch or req.flag("watch"):
                    return watch_stream(self.ctx, req, t)
                return objects.list_objects(self.ctx, req, t)
            if method == "POST":
                return objects.create_object(self.ctx, req, t)
            if method == "DELETE" and "deletecollection" in verbs:
                return objects.delete_collection(self.ctx, req, t)
            raise method_not_allowed()
        if method == "GET":
            if t.watch or req.flag("watch"):
                return watch_stream(self.ctx, req, t)
            return objects.get_object(self.ctx, req, t)
        if _VERB_BY_METHOD.get(method) in verbs and method != "POST":
            if method == "PUT":
                return objects.replace_object(self.ctx, req, t)
            return objects.patch_object(self.ctx, req, t)
        if method == "DELETE":
            return objects.delete_object(self.ctx, req, t)
        raise method_not_allowed()

    async def _send_stream(self, stream: Stream, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": stream.status,
                    "headers": [(b"content-type", stream.content_type.encode()),
                                (b"cache-control", b"no-cache, private")]})

        async def pump() -> None:
            async for chunk in stream.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        pumping = asyncio.ensure_future(pump())
        listening = asyncio.ensure_future(until_disconnect())
        self._streams.add(pumping)
        try:
            await asyncio.wait({pumping, listening}, timeout=stream.timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._streams.discard(pumping)
            for task in (pumping, listening):
                task.cancel()
            if stream.close is not None:
                stream.close()
            for task in (pumping, listening):
                try:
                    await task
                except (asyncio.CancelledError, OSError):
                    pass
                except Exception:
                    log.exception("stream ended with an error")
        if listening.cancelled() or not listening.done():
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    def close_streams(self) -> None:
        """End every open watch/log stream (the cluster is stopping)."""
        for task in list(self._streams):
            task.cancel()
