"""Errors of the bus itself, and how any BayportError crosses it.

A handler's ``BayportError`` travels as ``{"error": {"code", "detail", "field", ...}}``
and the caller re-raises the class registered for that ``code`` (``bayport.errors.
error_class_for``), so a conductor's NotFound is the API's NotFound. The classes
below are the bus's own failures; they subclass BayportError so the API maps them
like any other error.
"""

from __future__ import annotations

import inspect
from typing import Any

from bayport.db.base import database_unavailable
from bayport.errors import BayportError, ServiceUnavailable, error_class_for


class UnknownMethodError(BayportError):
    status = 501
    code = "RPCUnknownMethod"
    title = "The server has no such RPC method"


class VersionMismatchError(BayportError):
    status = 500
    code = "RPCVersionMismatch"
    title = "The server does not serve this RPC API version"


class RemoteError(BayportError):
    """A handler failed with an exception that is not a BayportError (a bug, not a domain error)."""

    status = 500
    code = "RPCRemoteError"
    title = "The remote handler failed unexpectedly"


class MalformedMessageError(BayportError):
    status = 500
    code = "RPCMalformedMessage"
    title = "A message on the bus could not be decoded"


# Keys of the error body that are not constructor keywords of the error class.
_BODY_ONLY = frozenset({"code", "title", "detail", "status"})


_KEYWORDS: dict[type[BayportError], frozenset[str]] = {}


def _keyword_params(cls: type[BayportError]) -> frozenset[str]:
    """Named keyword-only parameters of ``cls.__init__`` beyond ``field`` (e.g. ``delay``, ``status``)."""
    if cls not in _KEYWORDS:
        params = inspect.signature(cls.__init__).parameters.values()
        _KEYWORDS[cls] = frozenset(p.name for p in params
                                   if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "field")
    return _KEYWORDS[cls]


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """The reply body of a failed handler; anything that is not a BayportError becomes a RemoteError."""
    if not isinstance(exc, BayportError) and database_unavailable(exc):
        exc = ServiceUnavailable(f"the database is unavailable to the conductor "
                                 f"({type(exc).__name__}); retry shortly")
    elif not isinstance(exc, BayportError):
        exc = RemoteError(f"{type(exc).__name__}: {exc}", exc_type=type(exc).__name__)
    body = exc.to_dict()
    for name in _keyword_params(type(exc)):
        if name not in body and hasattr(exc, name):
            body[name] = getattr(exc, name)
    return body


def error_from_wire(body: dict[str, Any]) -> BayportError:
    """Rebuild the error a handler raised: same class (by code), detail, field and extras."""
    code = str(body.get("code") or BayportError.code)
    detail = str(body.get("detail") or "")
    cls = error_class_for(code)
    kwargs = {key: value for key, value in body.items() if key not in _BODY_ONLY}
    if "status" in _keyword_params(cls) and "status" in body:
        kwargs["status"] = body["status"]
    if cls is BayportError and code != BayportError.code:
        # A code this process does not know (a newer conductor): keep it visible.
        return RemoteError(detail, remote_code=code, **kwargs)
    try:
        return cls(detail, **kwargs)
    except TypeError:
        return RemoteError(detail, remote_code=code)
