"""Who is asking: the request context carried from the API over the bus to the conductor."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

ROLES = ("admin", "member", "reader")


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


class RequestContext(BaseModel):
    """Identity and roles of the caller; ``is_admin`` sees every project when asked to."""

    request_id: str = Field(default_factory=new_request_id)
    user_id: str = ""
    project_id: str = ""
    roles: list[str] = Field(default_factory=list)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def can_write(self) -> bool:
        return "admin" in self.roles or "member" in self.roles

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_wire(cls, data: dict[str, Any] | None) -> RequestContext:
        return cls.model_validate(data or {})

    @classmethod
    def system(cls) -> RequestContext:
        """The conductor acting on its own (recovery, timeouts, watches)."""
        return cls(user_id="bayport-system", project_id="", roles=["admin"])
