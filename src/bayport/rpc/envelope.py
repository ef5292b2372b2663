"""The request and reply envelopes of DESIGN.md ("RPC envelope").

Request: ``{"method", "version", "context": {request_id, user_id, project_id, roles},
"args"}``; reply: ``{"result": ...}`` or ``{"error": {...}}``. ``client`` encodes
requests and decodes replies; ``server`` does the opposite and applies the version
rule here: same major, requested minor not above the served minor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bayport.objects.context import RequestContext
from bayport.rpc import codec
from bayport.rpc.errors import MalformedMessageError, RemoteError, error_from_wire, error_to_wire

_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def parse_version(version: str) -> tuple[int, int]:
    """``"1.3"`` → ``(1, 3)``; anything else is a ValueError."""
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"RPC API version must look like MAJOR.MINOR, not {version!r}")
    return int(match.group(1)), int(match.group(2))


def is_compatible(requested: str, served: str) -> bool:
    """A server at ``served`` can answer a caller that needs ``requested``."""
    want_major, want_minor = parse_version(requested)
    have_major, have_minor = parse_version(served)
    return want_major == have_major and want_minor <= have_minor


@dataclass(frozen=True)
class Request:
    """A decoded request; ``args`` are still wire values (objects not yet rebuilt)."""

    method: str
    version: str
    context: RequestContext
    args: dict[str, Any]


def encode_request(ctx: RequestContext, method: str, version: str, args: dict[str, Any]) -> bytes:
    return codec.dumps({"method": method, "version": version, "context": ctx.to_wire(),
                        "args": codec.to_wire(args)})


def decode_request(body: bytes) -> Request:
    """Parse and check the envelope's shape; raises MalformedMessageError for anything else."""
    try:
        data = codec.loads(body)
    except ValueError as exc:
        raise MalformedMessageError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedMessageError(f"envelope must be a JSON object, not {type(data).__name__}")
    method, version, args = data.get("method"), data.get("version"), data.get("args", {})
    if not isinstance(method, str) or not method:
        raise MalformedMessageError("envelope has no method name")
    if not isinstance(version, str) or _VERSION.match(version) is None:
        raise MalformedMessageError(f"envelope of {method!r} has an invalid version {version!r}")
    if not isinstance(args, dict):
        raise MalformedMessageError(f"args of {method!r} must be an object")
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        raise MalformedMessageError(f"context of {method!r} must be an object")
    try:
        ctx = RequestContext.from_wire(context)
    except ValidationError as exc:
        raise MalformedMessageError(f"context of {method!r} is invalid: {exc}") from exc
    return Request(method=method, version=version, context=ctx, args=args)


def encode_result(value: Any) -> bytes:
    return codec.dumps({"result": codec.to_wire(value)})


def encode_error(exc: BaseException) -> bytes:
    """An error reply that always encodes, whatever the exception carries."""
    try:
        return codec.dumps_lenient({"error": error_to_wire(exc)})
    except Exception:  # an exception whose own fields cannot be rendered still gets a reply
        fallback = RemoteError(f"{type(exc).__name__} (unrenderable)", exc_type=type(exc).__name__)
        return codec.dumps_lenient({"error": error_to_wire(fallback)})


def decode_reply(body: bytes) -> Any:
    """The result of a reply, with objects rebuilt; an error reply is raised as its BayportError."""
    try:
        data = codec.loads(body)
    except ValueError as exc:
        raise MalformedMessageError(f"reply is not JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        raise error_from_wire(data["error"])
    if not isinstance(data, dict) or "result" not in data:
        raise MalformedMessageError("reply has neither result nor error")
    return codec.from_wire(data["result"])
