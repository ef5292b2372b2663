"""The one place where errors become HTTP responses.

Every error body is ``{"errors": [{"status", "code", "title", "detail", "request_id"}]}``;
pydantic's validation errors are rewritten to name the field (``node_count``) and the
reason, with status 400 as Magnum answers, never FastAPI's default 422.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bayport import errors
from bayport.db.base import database_unavailable

log = logging.getLogger(__name__)


# What a 503 asks the client to wait before trying again (an outage of the database or bus).
RETRY_AFTER_SECONDS = 5


def error_response(request: Request, status: int, items: list[dict[str, Any]]) -> Response:
    rid = getattr(request.state, "request_id", None)
    for item in items:
        item.setdefault("status", status)
        item["request_id"] = rid
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return Response(orjson.dumps({"errors": items}), status_code=status,
                    media_type="application/json", headers=headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def validation_items(exc: RequestValidationError) -> list[dict[str, Any]]:
    items = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        field = _field_of(loc)
        if kind == "json_invalid":
            ctx = err.get("ctx") or {}
            detail = f"malformed JSON body: {ctx.get('error', err.get('msg'))}"
            field = "body"
        elif kind == "extra_forbidden":
            detail = f"unknown field {field!r}"
        elif kind == "missing":
            detail = f"{field} is required"
        else:
            detail = f"{field}: {err.get('msg')}"
        items.append({"code": "InvalidInput", "title": "Invalid input", "detail": detail,
                      "field": field})
    return items


def unavailable(exc: BaseException) -> errors.ServiceUnavailable:
    return errors.ServiceUnavailable(
        f"the database is unavailable ({type(exc).__name__}); retry in {RETRY_AFTER_SECONDS} s")


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.BayportError)
    async def _domain(request: Request, exc: errors.BayportError) -> Response:
        status = errors.http_status_of(exc)
        if status >= 500:
            log.error("request %s failed: %s", getattr(request.state, "request_id", "?"), exc.detail)
        return error_response(request, status, [exc.to_dict()])

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 400, validation_items(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return error_response(request, exc.status_code,
                              [{"code": title.replace(" ", ""), "title": title,
                                "detail": str(exc.detail)}])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if database_unavailable(exc):
            log.warning("request %s: the database is unavailable: %s: %s",
                        getattr(request.state, "request_id", "?"), type(exc).__name__, exc)
            return error_response(request, 503, [unavailable(exc).to_dict()])
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(request, 500, [{"code": "InternalError", "title": "Internal error",
                                              "detail": "internal error; see the server log"}])
