"""Heat's stack REST API (``/v1/{project_id}/stacks``), just the calls the heat driver makes.

Each call resolves the orchestration endpoint from the Keystone catalog through
``OpenStackSession`` and wraps failures once: 5xx, 429 and connection errors are
``TemporaryError``, other refusals ``PermanentError`` carrying Heat's message. The
driver (``drivers/heat.py``) decides what a stack's state means for the bay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from bayport import errors
from bayport.drivers.openstack import OpenStackSession, error_message, raise_for_openstack

ORCHESTRATION = "orchestration"


@dataclass
class Stack:
    id: str
    name: str
    status: str
    reason: str = ""
    updated_time: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    output_errors: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """Heat addresses a stack as ``{name}/{id}`` for everything but a lookup."""
        return f"{quote(self.name, safe='')}/{quote(self.id, safe='')}"

    @property
    def action(self) -> str:
        """CREATE, UPDATE, DELETE, ROLLBACK, … (Heat's status is ``{action}_{state}``)."""
        return self.status.removesuffix(f"_{self.state}")

    @property
    def state(self) -> str:
        """IN_PROGRESS, COMPLETE or FAILED."""
        if self.status.endswith("_IN_PROGRESS"):
            return "IN_PROGRESS"
        return self.status.rsplit("_", 1)[-1]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Stack:
        outputs: dict[str, Any] = {}
        output_errors: dict[str, str] = {}
        for item in body.get("outputs") or []:
            key = str(item.get("output_key"))
            if item.get("output_error"):
                output_errors[key] = str(item["output_error"])
            else:
                outputs[key] = item.get("output_value")
        return cls(id=str(body["id"]), name=str(body["stack_name"]), status=str(body["stack_status"]),
                   reason=str(body.get("stack_status_reason") or ""),
                   updated_time=body.get("updated_time"),
                   parameters=dict(body.get("parameters") or {}), outputs=outputs,
                   output_errors=output_errors)


class HeatAPI:
    def __init__(self, session: OpenStackSession) -> None:
        self.session = session

    @property
    def retry_after(self) -> float:
        return self.session.settings.heat_poll_interval

    async def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        base = await self.session.endpoint(ORCHESTRATION)
        return await self.session.authorized(method, f"{base}/stacks{path}", what, **kwargs)

    def _stack_of(self, response: httpx.Response, what: str) -> Stack:
        raise_for_openstack(response, what, retry_after=self.retry_after)
        try:
            return Stack.from_body(response.json()["stack"])
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.TemporaryError(f"{what}: unreadable answer from Heat: {exc}",
                                        delay=self.retry_after) from exc

    async def find(self, name_or_id: str) -> Stack | None:
        """The live stack with this name or id (Heat redirects to ``{name}/{id}``), or None."""
        what = f"looking up Heat stack {name_or_id}"
        response = await self._call("GET", f"/{quote(name_or_id, safe='')}", what)
        if response.status_code == 404:
            return None
        return self._stack_of(response, what)

    async def show(self, stack: Stack) -> Stack | None:
        """Current state of a known stack; a deleted one is None or DELETE_COMPLETE."""
        what = f"reading Heat stack {stack.name}"
        response = await self._call("GET", f"/{stack.path}", what)
        if response.status_code == 404:
            return None
        return self._stack_of(response, what)

    async def create(self, name: str, template: str, files: dict[str, str],
                     parameters: dict[str, Any], timeout_mins: int) -> str:
        what = f"creating Heat stack {name}"
        body = {"stack_name": name, "template": template, "files": files, "parameters": parameters,
                "timeout_mins": timeout_mins, "disable_rollback": True}
        response = await self._call("POST", "", what, json=body)
        if response.status_code == 409:
            # Another conductor created it between our lookup and this call; the caller looks again.
            raise errors.TemporaryError(f"{what}: {error_message(response)}", delay=self.retry_after)
        raise_for_openstack(response, what, retry_after=self.retry_after)
        return str(response.json()["stack"]["id"])

    async def update(self, stack: Stack, parameters: dict[str, Any], timeout_mins: int) -> None:
        """PATCH: keep the template and every parameter not named here (``existing=true``)."""
        what = f"updating Heat stack {stack.name}"
        response = await self._call("PATCH", f"/{stack.path}", what,
                                    json={"parameters": parameters, "timeout_mins": timeout_mins})
        if response.status_code == 409:
            raise errors.TemporaryError(f"{what}: {error_message(response)}", delay=self.retry_after)
        raise_for_openstack(response, what, retry_after=self.retry_after)

    async def delete(self, stack: Stack) -> bool:
        """Start deleting; False when Heat no longer knows the stack."""
        what = f"deleting Heat stack {stack.name}"
        response = await self._call("DELETE", f"/{stack.path}", what)
        if response.status_code == 404:
            return False
        if response.status_code == 409:
            raise errors.TemporaryError(f"{what}: {error_message(response)}", delay=self.retry_after)
        raise_for_openstack(response, what, retry_after=self.retry_after)
        return True
