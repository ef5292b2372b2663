"""Kubernetes API errors raised by the store, validation and the HTTP layer.

Every failure inside the embedded cluster engine is an ``ApiError`` carrying the HTTP code and
the metav1 ``Status`` reason Kubernetes would answer with; the HTTP layer (``cluster.http``)
turns it into the response body in one place, and in-process callers (controllers) catch it.
"""

from __future__ import annotations

from typing import Any

_GROUPS = {"jobs": "batch"}


class ApiError(Exception):
    """A Kubernetes API failure: ``code`` is the HTTP status, ``reason`` the Status reason."""

    def __init__(self, code: int, reason: str, message: str, *,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _details(plural: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": plural}
    group = _GROUPS.get(plural)
    if group:
        details["group"] = group
    return details


def qualified(plural: str) -> str:
    group = _GROUPS.get(plural)
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(plural)} "{name}" not found',
                    details=_details(plural, name))


def already_exists(plural: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(plural)} "{name}" already exists',
                    details=_details(plural, name))


def conflict(plural: str, name: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(plural)} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    details=_details(plural, name))


def invalid(kind: str, name: str, causes: list[tuple[str, str]], *,
            group: str = "") -> ApiError:
    """422 Invalid; each cause is ``(field path, message)`` as ``spec.containers[0].image``."""
    summary = ", ".join(f"{field}: {msg}" for field, msg in causes)
    details: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": _cause_reason(msg), "message": msg, "field": field}
                   for field, msg in causes],
    }
    if group:
        details["group"] = group
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details=details)


def _cause_reason(message: str) -> str:
    if message.startswith("Required value"):
        return "FieldValueRequired"
    if message.startswith("Duplicate value"):
        return "FieldValueDuplicate"
    if message.startswith("Unsupported value"):
        return "FieldValueNotSupported"
    if message.startswith("Forbidden"):
        return "FieldValueForbidden"
    return "FieldValueInvalid"


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, plural: str = "", name: str = "") -> ApiError:
    details = _details(plural, name) if plural else None
    return ApiError(403, "Forbidden", message, details=details)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource"
                       ) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")
