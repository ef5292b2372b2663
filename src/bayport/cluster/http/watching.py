"""Watch requests (``?watch=1`` or ``/watch/`` paths): a chunked stream of WatchEvents read from a
store ``Watch`` — newline-delimited JSON, or length-prefixed protobuf frames when the client
prefers ``application/vnd.kubernetes.protobuf`` (client-go's typed informers).

Without a resourceVersion (or with "0") the stream starts with ADDED events for the current
objects, as the kube-apiserver does; with one, retained history is replayed (410 Expired as an
ERROR event when too old). ``sendInitialEvents=true`` (the watch-list of client-go reflectors and
``kubectl wait``) sends the current objects whatever the resourceVersion, then a BOOKMARK
annotated ``k8s.io/initial-events-end``; ``allowWatchBookmarks`` adds a BOOKMARK carrying the
newest resourceVersion whenever the stream has been idle for ``ApiContext.bookmark_interval``.
With a Table Accept header every event object is a one-row Table (column definitions only in
the first), which is what ``kubectl get -w`` reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from bayport.cluster.errors import ApiError, bad_request
from bayport.cluster.http.context import ApiContext, include_object, wants_table
from bayport.cluster.http.protobuf import codec
from bayport.cluster.http.routing import Target
from bayport.cluster.http.wire import PROTOBUF, Request, Stream
from bayport.cluster.resources import Resource
from bayport.cluster.tables import to_table
from bayport.cluster.watch import BOOKMARK, ERROR, Watch

log = logging.getLogger(__name__)

_BATCH = 256            # events written per chunk when a reader has fallen behind
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def _forbidden(field: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {field}: Forbidden: {message}',
                    details={"group": "meta.k8s.io", "kind": "ListOptions", "causes": [
                        {"reason": "FieldValueForbidden", "field": field,
                         "message": f"Forbidden: {message}"}]})


def _sends_initial(req: Request, rv: int) -> bool:
    """Whether the stream opens with the current objects (the ListOptions rules of the API server)."""
    match = req.query.get("resourceVersionMatch") or ""
    if "sendInitialEvents" not in req.query:
        if match:
            raise _forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden for watch "
                             "unless sendInitialEvents is provided")
        return rv == 0
    if match != "NotOlderThan":
        raise _forbidden("resourceVersionMatch", "sendInitialEvents requires setting "
                         "resourceVersionMatch to NotOlderThan")
    if not req.flag("allowWatchBookmarks"):
        raise _forbidden("allowWatchBookmarks", "sendInitialEvents requires setting "
                         "allowWatchBookmarks to true")
    return req.flag("sendInitialEvents")


def bookmark(res: Resource, rv: int, *, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}


def watch_stream(ctx: ApiContext, req: Request, t: Target) -> Stream:
    raw_rv = req.query.get("resourceVersion") or "0"
    try:
        rv = int(raw_rv)
    except ValueError:
        raise bad_request(f"invalid resource version: {raw_rv!r}") from None
    initial = _sends_initial(req, rv)
    fields = req.query.get("fieldSelector") or ""
    if t.name is not None:
        fields = f"metadata.name={t.name}" + (f",{fields}" if fields else "")
    watch = ctx.store.watch(t.resource.plural, t.namespace,
                            resource_version=None if initial else rv or None,
                            label_selector=req.query.get("labelSelector"), field_selector=fields or None,
                            send_initial=initial)
    if initial and req.flag("sendInitialEvents"):
        # No await since the store listed: nothing newer than its resourceVersion can be queued yet.
        watch.push(BOOKMARK, bookmark(t.resource, ctx.store.resource_version, initial_end=True))
    every = ctx.bookmark_interval if req.flag("allowWatchBookmarks") else None
    table = wants_table(req)
    proto = not table and req.prefers_protobuf

    def idle_bookmark() -> dict[str, Any]:
        # Only as far as watchers have been told: a batch still being stored is published later.
        return bookmark(t.resource, max(ctx.store.published_rv, watch.after))

    render = _frame if proto else _json_line
    chunks = _events(watch, t.resource.plural, table, include_object(req), render, every, idle_bookmark)
    timeout = req.int_param("timeoutSeconds")
    return Stream(200, chunks, f"{PROTOBUF};stream=watch" if proto else "application/json",
                  close=watch.close, timeout=float(timeout) if timeout else None)


def _json_line(kind: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def _frame(kind: str, obj: dict[str, Any]) -> bytes:
    try:
        return codec.watch_frame(kind, obj)
    except codec.NotEncodable as exc:
        # A stored value protobuf cannot carry: say so in the stream rather than end it silently.
        log.warning("watch event has no protobuf form: %s", exc)
        status = ApiError(500, "InternalError", f"the object has no protobuf form: {exc}").status_body()
        return codec.watch_frame(ERROR, status)


_IDLE: Any = object()


async def _next(watch: Watch, every: float | None) -> Any:
    if every is None:
        return await watch.next_raw()
    try:
        return await asyncio.wait_for(watch.next_raw(), every)
    except TimeoutError:
        return _IDLE


async def _events(watch: Watch, plural: str, table: bool, include: str,
                  render: Callable[[str, dict[str, Any]], bytes], every: float | None,
                  idle_bookmark: Callable[[], dict[str, Any]]) -> AsyncIterator[bytes]:
    first = True
    try:
        while True:
            item = await _next(watch, every)
            if item is _IDLE:
                if not watch.pending():      # an event that raced the timeout goes first
                    yield render(BOOKMARK, idle_bookmark())
                continue
            if item is None:
                return
            batch = [item]
            while watch.pending() and len(batch) < _BATCH:
                nxt = await watch.next_raw()
                if nxt is None:
                    break
                batch.append(nxt)
            out = bytearray()
            for kind, obj in batch:
                body = obj
                if table and kind not in (ERROR, BOOKMARK):
                    body = to_table(plural, [obj], include_object=include, headers=first)
                    first = False
                out += render(kind, body)
            yield bytes(out)
    finally:
        watch.close()
