"""CRUD on resources over HTTP: GET one/list, POST, PUT, PATCH, DELETE and DELETE collection.

Each handler decodes the request, calls the store's snapshot methods (no copies: the answer is
serialised straight from the stored object) and renders the result through ``context``.
Watches (``?watch=1``) go to ``watching``; pods/log, binding and scale to ``subresources``.
"""

from __future__ import annotations

from typing import Any

from bayport.cluster.errors import ApiError, bad_request
from bayport.cluster.http.context import (
    ApiContext,
    decode_continue,
    encode_continue,
    field_validation,
    render_list,
    render_object,
)
from bayport.cluster.http.routing import Target
from bayport.cluster.http.wire import Request, Response
from bayport.cluster.patch import APPLY_PATCH, PATCH_TYPES
from bayport.cluster.validation import check_object_kind


def _dry_run(req: Request) -> bool:
    return bool(req.query.get("dryRun"))


def get_object(ctx: ApiContext, req: Request, t: Target) -> Response:
    assert t.name is not None
    obj = ctx.store.get_snapshot(t.resource.plural, t.namespace, t.name)
    return render_object(req, t.resource, obj)


def list_objects(ctx: ApiContext, req: Request, t: Target) -> Response:
    limit = req.int_param("limit")
    token = req.query.get("continue")
    start = decode_continue(token)[1] if token else None
    items, rv = ctx.store.list_snapshots(
        t.resource.plural, t.namespace, label_selector=req.query.get("labelSelector"),
        field_selector=req.query.get("fieldSelector"), start_after=start,
        limit=limit if limit and limit > 0 else None)
    next_token = None
    if limit and limit > 0 and len(items) > limit:
        items = items[:limit]
        last = items[-1]["metadata"]
        next_token = encode_continue(rv, (last.get("namespace", ""), last["name"]))
    return render_list(req, t.resource, items, rv, next_token)


def _body_object(req: Request, t: Target) -> dict[str, Any]:
    obj = check_object_kind(t.resource.plural, req.json_body())
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    elif not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if t.resource.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and t.namespace and body_ns != t.namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent "
                              "on the request")
        meta["namespace"] = t.namespace or body_ns or "default"
    return obj


def create_object(ctx: ApiContext, req: Request, t: Target) -> Response:
    obj = _body_object(req, t)
    warnings = field_validation(req, t.resource, obj)
    created = ctx.store.create_owned(t.resource.plural, obj, dry_run=_dry_run(req))
    return render_object(req, t.resource, created, 201, warnings)


def replace_object(ctx: ApiContext, req: Request, t: Target) -> Response:
    assert t.name is not None
    obj = _body_object(req, t)
    name = obj["metadata"].get("name")
    if name and name != t.name:
        raise bad_request(f"the name of the object ({name}) does not match the name on the URL ({t.name})")
    warnings = field_validation(req, t.resource, obj)
    sub = t.subresource if t.subresource == "status" else None
    updated = ctx.store.update_owned(t.resource.plural, obj, subresource=sub, namespace=t.namespace,
                                     name=t.name, dry_run=_dry_run(req))
    return render_object(req, t.resource, updated, 200, warnings)


def patch_type(req: Request) -> str:
    ctype = req.content_type
    if ctype not in PATCH_TYPES:
        raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                       f"accepted media types include: {', '.join(PATCH_TYPES)}")
    return ctype


def patch_object(ctx: ApiContext, req: Request, t: Target) -> Response:
    assert t.name is not None
    ptype = patch_type(req)
    body = req.json_body()
    warnings: list[tuple[bytes, bytes]] = []
    if ptype != "application/json-patch+json":
        warnings = field_validation(req, t.resource, body)
    if ptype == APPLY_PATCH and not req.query.get("fieldManager"):
        raise bad_request("PATCH requests of type application/apply-patch+yaml require fieldManager")
    sub = t.subresource if t.subresource == "status" else None
    created = ptype == APPLY_PATCH and not ctx.store.exists(t.resource.plural, t.namespace, t.name)
    patched = ctx.store.patch_snapshot(t.resource.plural, t.namespace, t.name, body, ptype,
                                       subresource=sub, dry_run=_dry_run(req))
    return render_object(req, t.resource, patched, 201 if created else 200, warnings)


def _delete_options(req: Request) -> dict[str, Any]:
    body = req.json_body(allow_empty=True)
    options: dict[str, Any] = body if isinstance(body, dict) else {}
    for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents", "dryRun"):
        if key in req.query and key not in options:
            options[key] = req.query[key]
    policy = options.get("propagationPolicy")
    if policy is None and str(options.get("orphanDependents", "")).lower() == "true":
        options["propagationPolicy"] = "Orphan"
    elif policy is not None and policy not in ("Orphan", "Background", "Foreground"):
        raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                       f'Unsupported value: "{policy}": supported values: "Foreground", "Background", '
                       '"Orphan", "nil"')
    grace = options.get("gracePeriodSeconds")
    if grace is not None:
        try:
            options["gracePeriodSeconds"] = int(grace)
        except (TypeError, ValueError):
            raise bad_request(f"invalid gracePeriodSeconds: {grace!r}") from None
    return options


def delete_object(ctx: ApiContext, req: Request, t: Target) -> Response:
    assert t.name is not None
    options = _delete_options(req)
    pre = options.get("preconditions") or {}
    final = ctx.store.delete_snapshot(
        t.resource.plural, t.namespace, t.name, grace_period_seconds=options.get("gracePeriodSeconds"),
        propagation=options.get("propagationPolicy"), precondition_uid=pre.get("uid"),
        precondition_rv=pre.get("resourceVersion"), dry_run=bool(options.get("dryRun")))
    return render_object(req, t.resource, final)


def delete_collection(ctx: ApiContext, req: Request, t: Target) -> Response:
    options = _delete_options(req)
    items, _ = ctx.store.list_snapshots(t.resource.plural, t.namespace,
                                        label_selector=req.query.get("labelSelector"),
                                        field_selector=req.query.get("fieldSelector"))
    deleted = []
    for obj in items:
        meta = obj["metadata"]
        try:
            deleted.append(ctx.store.delete_snapshot(
                t.resource.plural, meta.get("namespace"), meta["name"],
                grace_period_seconds=options.get("gracePeriodSeconds"),
                propagation=options.get("propagationPolicy"), dry_run=bool(options.get("dryRun"))))
        except ApiError as exc:
            if exc.code != 404:          # already gone with an owner deleted earlier in this loop
                raise
    return render_list(req, t.resource, deleted, ctx.store.resource_version, None)
