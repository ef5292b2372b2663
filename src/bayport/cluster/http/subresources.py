"""Subresources other than status: replicationcontrollers/scale, pods/binding, pods/log and
namespaces/finalize.

Scale is an autoscaling/v1 view of an RC's replicas (``kubectl scale`` PATCHes it); binding is how
an external scheduler places a pod; log streams come from the controllers (``LogSource``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from bayport.cluster.errors import ApiError, bad_request, conflict
from bayport.cluster.http.context import ApiContext
from bayport.cluster.http.objects import patch_type
from bayport.cluster.http.routing import Target
from bayport.cluster.http.wire import Request, Response, Stream, json_response, success_status
from bayport.cluster.patch import apply_patch
from bayport.cluster.store import now_iso
from bayport.cluster.watch import clone


def _scale_of(rc: dict[str, Any]) -> dict[str, Any]:
    meta = rc["metadata"]
    selector = (rc.get("spec") or {}).get("selector") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": int((rc.get("spec") or {}).get("replicas", 1))},
        "status": {"replicas": int((rc.get("status") or {}).get("replicas") or 0),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))},
    }


def scale(ctx: ApiContext, req: Request, t: Target) -> Response:
    assert t.name is not None
    plural = t.resource.plural
    rc = ctx.store.get_snapshot(plural, t.namespace, t.name)
    if req.method == "GET":
        return json_response(_scale_of(rc))
    if req.method == "PUT":
        wanted = req.json_body()
    elif req.method == "PATCH":
        wanted = apply_patch(_scale_of(rc), req.json_body(), patch_type(req))
    else:
        raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on {plural}/scale")
    if not isinstance(wanted, dict):
        raise bad_request("the body of the request must be a Scale object")
    replicas = (wanted.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ApiError(422, "Invalid", f'Scale.autoscaling "{t.name}" is invalid: spec.replicas: Invalid '
                       f"value: {replicas!r}: must be greater than or equal to 0",
                       details={"name": t.name, "group": "autoscaling", "kind": "Scale", "causes": [
                           {"reason": "FieldValueInvalid", "field": "spec.replicas",
                            "message": "must be greater than or equal to 0"}]})
    patch: dict[str, Any] = {"spec": {"replicas": replicas}}
    wanted_rv = (wanted.get("metadata") or {}).get("resourceVersion")
    if wanted_rv:
        if str(wanted_rv) != rc["metadata"]["resourceVersion"]:
            raise conflict(plural, t.name)
        patch["metadata"] = {"resourceVersion": wanted_rv}
    updated = ctx.store.patch_snapshot(plural, t.namespace, t.name, patch, "application/merge-patch+json")
    return json_response(_scale_of(updated))


def binding(ctx: ApiContext, req: Request, t: Target) -> Response:
    assert t.name is not None
    if req.method != "POST":
        raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on pods/binding")
    body = req.json_body()
    node = ((body.get("target") or {}).get("name") if isinstance(body, dict) else None) or ""
    if not node:
        raise ApiError(422, "Invalid", f'Binding "{t.name}" is invalid: target.name: Required value',
                       details={"name": t.name, "kind": "Binding", "causes": [
                           {"reason": "FieldValueRequired", "field": "target.name",
                            "message": "Required value"}]})
    pod = ctx.store.get_snapshot("pods", t.namespace, t.name)
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{t.name}": pod '
                       f"{t.name} is already assigned to node \"{current}\"",
                       details={"name": t.name, "kind": "pods/binding"})

    def bind(obj: dict[str, Any]) -> None:
        obj["spec"]["nodeName"] = node
        status = obj.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": now_iso()})
        status["conditions"] = conditions

    ctx.store.mutate("pods", t.namespace, t.name, bind)
    return success_status(201)


async def logs(ctx: ApiContext, req: Request, t: Target) -> Response | Stream:
    assert t.name is not None
    ctx.store.get_snapshot("pods", t.namespace, t.name)
    if ctx.logs is None:
        raise ApiError(503, "ServiceUnavailable", "pod logs are not available: no controllers running")
    follow = req.flag("follow")
    result = ctx.logs.pod_logs(t.namespace or "default", t.name, req.query.get("container") or None,
                               previous=req.flag("previous"), follow=follow,
                               tail_lines=req.int_param("tailLines"), timestamps=req.flag("timestamps"))
    source: AsyncIterator[bytes] = await result if inspect.isawaitable(result) else result
    iterator = source.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = b""
    if not follow:
        parts = [first]
        async for chunk in iterator:
            parts.append(chunk)
        return Response(200, b"".join(parts), "text/plain")

    async def chunks() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for chunk in iterator:
                yield chunk
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                await closer()

    return Stream(200, chunks(), "text/plain")


def finalize_namespace(ctx: ApiContext, req: Request, t: Target) -> Response:
    assert t.name is not None
    if req.method != "PUT":
        raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on namespaces/finalize")
    body = req.json_body()
    finalizers = ((body.get("spec") or {}).get("finalizers") if isinstance(body, dict) else None) or []

    def set_finalizers(obj: dict[str, Any]) -> None:
        obj.setdefault("spec", {})["finalizers"] = list(finalizers)

    updated = ctx.store.mutate("namespaces", None, t.name, set_finalizers)
    if not finalizers and (updated.get("status") or {}).get("phase") == "Terminating":
        ctx.store.finalize_namespace(t.name)
    return json_response(clone(updated))
