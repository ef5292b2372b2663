"""Domain errors. Each knows its HTTP status and code; the API maps them to the
``{"errors": [...]}`` body in exactly one place (api/errors.py), and the RPC
layer carries them across the bus by ``code`` so a conductor's NotFound is the
API's NotFound.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BayportError(Exception):
    """Base of every error Bayport raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "InternalError"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "code": self.code, "title": self.title,
                                "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return body


class InvalidInput(BayportError):
    status = 400
    code = "InvalidInput"
    title = "Invalid input"


class InvalidManifest(InvalidInput):
    code = "InvalidManifest"
    title = "Invalid manifest"


class Unauthorized(BayportError):
    status = 401
    code = "Unauthorized"
    title = "Authentication required"


class Forbidden(BayportError):
    status = 403
    code = "Forbidden"
    title = "Forbidden"


class NotFound(BayportError):
    status = 404
    code = "NotFound"
    title = "Not found"


class Conflict(BayportError):
    status = 409
    code = "Conflict"
    title = "Conflict"


class AmbiguousName(Conflict):
    code = "AmbiguousName"
    title = "More than one object has this name"


class InvalidState(Conflict):
    code = "InvalidState"
    title = "Object is not in a state that allows this"


class PayloadTooLarge(BayportError):
    status = 413
    code = "PayloadTooLarge"
    title = "Payload too large"


class ServiceUnavailable(BayportError):
    status = 503
    code = "ServiceUnavailable"
    title = "Service unavailable"


class RPCTimeout(BayportError):
    status = 504
    code = "RPCTimeout"
    title = "The conductor did not answer in time"


class TemporaryError(BayportError):
    """Worth retrying after ``delay`` seconds (a cluster restarting, a lock held)."""

    status = 503
    code = "TemporaryError"
    title = "Temporary failure"

    def __init__(self, detail: str, *, delay: float = 1.0, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.delay = delay


class PermanentError(BayportError):
    """Retrying will not help; the operation fails with this reason."""

    status = 500
    code = "PermanentError"
    title = "Operation failed"


class DriverError(PermanentError):
    code = "DriverError"
    title = "Provisioning driver failed"


class ClusterAPIError(BayportError):
    """The bay's Kubernetes API refused or failed a request; status mirrors its answer."""

    code = "ClusterAPIError"
    title = "Kubernetes API error"

    def __init__(self, detail: str, *, status: int = 502, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.http_status = status

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["status"] = self.http_status
        return body


def _all_subclasses(cls: type[BayportError]) -> list[type[BayportError]]:
    out: list[type[BayportError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_class_for(code: str) -> type[BayportError]:
    """The error class with this ``code`` (used to re-raise errors carried over RPC)."""
    candidates: list[type[BayportError]] = [BayportError, *_all_subclasses(BayportError)]
    for cls in candidates:
        if cls.code == code:
            return cls
    return BayportError


def http_status_of(exc: BayportError) -> int:
    if isinstance(exc, ClusterAPIError):
        return exc.http_status
    return exc.status
