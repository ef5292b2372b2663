"""Watch requests (``?watch=1`` or ``/watch/`` paths): a chunked stream of newline-delimited
WatchEvent JSON read from a store ``Watch``.

Without a resourceVersion (or with "0") the stream starts with ADDED events for the current
objects, as the kube-apiserver does; with one, retained history is replayed (410 Expired as an
ERROR event when too old). With a Table Accept header every event object is a one-row Table
(column definitions only in the first), which is what ``kubectl get -w`` reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from bayport.cluster.errors import bad_request
from bayport.cluster.http.context import ApiContext, include_object, wants_table
from bayport.cluster.http.routing import Target
from bayport.cluster.http.wire import Request, Stream
from bayport.cluster.tables import to_table
from bayport.cluster.watch import ERROR, Watch

_BATCH = 256            # events written per chunk when a reader has fallen behind


def watch_stream(ctx: ApiContext, req: Request, t: Target) -> Stream:
    raw_rv = req.query.get("resourceVersion") or "0"
    try:
        rv = int(raw_rv)
    except ValueError:
        raise bad_request(f"invalid resource version: {raw_rv!r}") from None
    fields = req.query.get("fieldSelector") or ""
    if t.name is not None:
        fields = f"metadata.name={t.name}" + (f",{fields}" if fields else "")
    watch = ctx.store.watch(t.resource.plural, t.namespace, resource_version=rv or None,
                            label_selector=req.query.get("labelSelector"), field_selector=fields or None,
                            send_initial=rv == 0)
    timeout = req.int_param("timeoutSeconds")
    chunks = _events(watch, t.resource.plural, wants_table(req), include_object(req))
    return Stream(200, chunks, close=watch.close, timeout=float(timeout) if timeout else None)


async def _events(watch: Watch, plural: str, table: bool, include: str) -> AsyncIterator[bytes]:
    first = True
    try:
        while True:
            item = await watch.next_raw()
            if item is None:
                return
            batch = [item]
            while watch.pending() and len(batch) < _BATCH:
                nxt = await watch.next_raw()
                if nxt is None:
                    break
                batch.append(nxt)
            lines = []
            for kind, obj in batch:
                body = obj
                if table and kind != ERROR:
                    body = to_table(plural, [obj], include_object=include, headers=first)
                    first = False
                lines.append(orjson.dumps({"type": kind, "object": body}))
            yield b"\n".join(lines) + b"\n"
    finally:
        watch.close()
