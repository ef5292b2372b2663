"""A fake Keystone v3 + Heat v1, served over real HTTP, for the heat driver's tests.

Only the calls the driver makes exist: password auth with a service catalog,
stack create / lookup (302 to ``{name}/{id}``, as Heat does) / show / PATCH /
DELETE. Stacks move through Heat's states as they are polled: IN_PROGRESS for
``polls`` looks, then COMPLETE, or FAILED with a reason when a failure was asked
for. ``unavailable`` answers the next N Heat calls with 503; ``stale_looks`` makes
the first looks after a PATCH/DELETE show the previous state, as a real Heat can.
Templates are checked with ``hot_check`` and parameters against the template, so a
broken template fails here as it would in Heat. Every request is recorded.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.drivers.hot_check import check_template, parse_hot

FAKE_CA_PEM = "-----BEGIN CERTIFICATE-----\nRkFLRSBDQQ==\n-----END CERTIFICATE-----\n"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeStack:
    id: str
    name: str
    template: dict[str, Any]
    files: dict[str, str]
    parameters: dict[str, Any]
    timeout_mins: int | None
    status: str = "CREATE_IN_PROGRESS"
    reason: str = "Stack CREATE started"
    updated_time: str | None = None
    polls_left: int = 0
    outcome: tuple[str, str] = ("CREATE_COMPLETE", "Stack CREATE completed successfully")
    stale_left: int = 0
    previous: tuple[str, str, str | None] | None = None
    deleted: bool = False
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    shows: int = 0


def heat_error(status: int, title: str, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"code": status, "title": title, "explanation": message,
                         "error": {"message": message, "type": kind, "traceback": None}},
                        status_code=status)


class FakeOpenStack:
    def __init__(self, *, username: str = "demo", password: str = "secret", project_name: str = "demo",
                 domain: str = "Default", region: str = "RegionOne", polls: int = 2) -> None:
        self.username, self.password, self.project_name = username, password, project_name
        self.domain, self.region = domain, region
        self.project_id = uuid.uuid4().hex
        self.polls = polls
        self.url = ""  # set once served
        self.create_failure: str | None = None
        self.update_failure: str | None = None
        self.delete_failures: list[str] = []
        self.unavailable = 0
        self.stale_looks = 0
        self.deleted_visible = False
        self.token_ttl = timedelta(hours=1)
        self.tokens: dict[str, str] = {}  # token -> project id
        self.auth_count = 0
        self.requests: list[Recorded] = []
        self.stacks: dict[str, FakeStack] = {}
        base = "/heat/v1/{project_id}/stacks"
        self.app = Starlette(routes=[
            Route("/v3/auth/tokens", self.authenticate, methods=["POST"]),
            Route(base, self.create_stack, methods=["POST"]),
            Route(base + "/{ident}", self.find_stack, methods=["GET"]),
            Route(base + "/{name}/{id}", self.show_stack, methods=["GET"]),
            Route(base + "/{name}/{id}", self.update_stack, methods=["PATCH"]),
            Route(base + "/{name}/{id}", self.delete_stack, methods=["DELETE"]),
        ])

    # -- test helpers ----------------------------------------------------------------
    def heat_requests(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/heat/")
                and (method is None or r.method == method)]

    def live_stacks(self) -> list[FakeStack]:
        return [s for s in self.stacks.values() if not s.deleted]

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # -- Keystone ----------------------------------------------------------------------
    async def authenticate(self, request: Request) -> Response:
        body = await self._record(request)
        self.auth_count += 1
        try:
            user = body["auth"]["identity"]["password"]["user"]
            project = body["auth"]["scope"]["project"]
            ok = (body["auth"]["identity"]["methods"] == ["password"] and user["name"] == self.username
                  and user["password"] == self.password and user["domain"]["name"] == self.domain
                  and project["name"] == self.project_name and project["domain"]["name"] == self.domain)
        except (KeyError, TypeError):
            return JSONResponse({"error": {"code": 400, "message": "malformed auth request"}}, 400)
        if not ok:
            return JSONResponse({"error": {"code": 401, "title": "Unauthorized",
                                           "message": "The request you have made requires authentication."}},
                                status_code=401)
        token = uuid.uuid4().hex
        self.tokens[token] = self.project_id
        catalog = [
            {"type": "identity", "name": "keystone", "endpoints": [
                {"interface": "public", "region": self.region, "region_id": self.region,
                 "url": f"{self.url}/v3"}]},
            {"type": "orchestration", "name": "heat", "endpoints": [
                # Wrong interface and wrong region point nowhere: choosing them fails the test.
                {"interface": "internal", "region": self.region, "region_id": self.region,
                 "url": "http://127.0.0.1:9/heat/v1/%(tenant_id)s"},
                {"interface": "public", "region": "OtherRegion", "region_id": "OtherRegion",
                 "url": "http://127.0.0.1:9/heat/v1/%(tenant_id)s"},
                {"interface": "public", "region": self.region, "region_id": self.region,
                 "url": f"{self.url}/heat/v1/%(tenant_id)s"},
            ]},
        ]
        expires = (datetime.now(UTC) + self.token_ttl).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        doc = {"token": {"methods": ["password"], "expires_at": expires, "catalog": catalog,
                         "project": {"id": self.project_id, "name": self.project_name,
                                     "domain": {"id": "default", "name": self.domain}},
                         "user": {"id": uuid.uuid4().hex, "name": self.username}}}
        return JSONResponse(doc, status_code=201, headers={"X-Subject-Token": token})

    # -- Heat --------------------------------------------------------------------------
    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        self.requests.append(Recorded(request.method, request.url.path, dict(request.headers), body))
        return body

    def _refuse(self, request: Request) -> Response | None:
        """Auth and availability checks every Heat call goes through first."""
        if self.unavailable > 0:
            self.unavailable -= 1
            return heat_error(503, "Service Unavailable", "heat-api is restarting", "ServiceUnavailable")
        project = self.tokens.get(request.headers.get("x-auth-token", ""))
        if project is None:
            return heat_error(401, "Unauthorized", "Authentication required", "Unauthorized")
        if project != request.path_params["project_id"]:
            return heat_error(403, "Forbidden", "token is scoped to another project", "Forbidden")
        return None

    def _live(self, request: Request) -> FakeStack | None:
        stack = self.stacks.get(request.path_params["id"])
        if stack is None or stack.name != request.path_params["name"]:
            return None
        return stack

    async def create_stack(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := self._refuse(request)) is not None:
            return refused
        template = body["template"]
        if isinstance(template, str):
            template = parse_hot(template)
        files = body.get("files") or {}
        problems = list(dict.fromkeys(check_template(template, files)))
        if problems:
            return heat_error(400, "Bad Request", "; ".join(problems), "StackValidationFailed")
        params, problem = self._parameters(template, {}, body.get("parameters") or {})
        if problem:
            return heat_error(400, "Bad Request", problem, "UserParameterMissing")
        name = body["stack_name"]
        if any(s.name == name for s in self.live_stacks()):
            return heat_error(409, "Conflict", f"The Stack ({name}) already exists.", "StackExists")
        stack = FakeStack(id=str(uuid.uuid4()), name=name, template=template, files=files,
                          parameters=params, timeout_mins=body.get("timeout_mins"), polls_left=self.polls)
        if self.create_failure:
            stack.outcome = ("CREATE_FAILED", self.create_failure)
        self.stacks[stack.id] = stack
        link = f"{self.url}/heat/v1/{self.project_id}/stacks/{name}/{stack.id}"
        return JSONResponse({"stack": {"id": stack.id, "links": [{"href": link, "rel": "self"}]}},
                            status_code=201)

    def _parameters(self, template: dict[str, Any], current: dict[str, Any],
                    given: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        declared = template.get("parameters") or {}
        for name, value in given.items():
            if name not in declared:
                return {}, f"The Parameter ({name}) was not defined in template."
            if declared[name]["type"] == "number":
                try:
                    float(value)
                except (TypeError, ValueError):
                    return {}, f"Parameter '{name}' is invalid: Value '{value}' is not an integer"
        merged = {**current, **given}
        for name, spec in declared.items():
            if name not in merged:
                if "default" not in spec:
                    return {}, f"The Parameter ({name}) was not provided."
                merged[name] = spec["default"]
        return merged, None

    async def find_stack(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._refuse(request)) is not None:
            return refused
        ident = request.path_params["ident"]
        for stack in self.live_stacks():
            if ident in (stack.id, stack.name):
                return RedirectResponse(
                    f"{self.url}/heat/v1/{self.project_id}/stacks/{stack.name}/{stack.id}", 302)
        return heat_error(404, "Not Found", f"The Stack ({ident}) could not be found.", "EntityNotFound")

    async def show_stack(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._refuse(request)) is not None:
            return refused
        stack = self._live(request)
        if stack is None or (stack.deleted and not self.deleted_visible):
            return heat_error(404, "Not Found", "The Stack could not be found.", "EntityNotFound")
        stack.shows += 1
        if stack.stale_left > 0 and stack.previous is not None:
            stack.stale_left -= 1
            status, reason, updated = stack.previous
            return JSONResponse({"stack": self._body(stack, status, reason, updated)})
        if stack.status.endswith("_IN_PROGRESS"):
            stack.polls_left -= 1
            if stack.polls_left <= 0:
                stack.status, stack.reason = stack.outcome
                if stack.status == "DELETE_COMPLETE":
                    stack.deleted = True
                    if not self.deleted_visible:
                        return heat_error(404, "Not Found", "The Stack could not be found.",
                                          "EntityNotFound")
        return JSONResponse({"stack": self._body(stack, stack.status, stack.reason, stack.updated_time)})

    def _begin(self, stack: FakeStack, action: str, outcome: tuple[str, str]) -> None:
        stack.previous = (stack.status, stack.reason, stack.updated_time)
        stack.stale_left = self.stale_looks
        stack.status, stack.reason = f"{action}_IN_PROGRESS", f"Stack {action} started"
        stack.polls_left, stack.outcome = self.polls, outcome

    async def update_stack(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := self._refuse(request)) is not None:
            return refused
        stack = self._live(request)
        if stack is None or stack.deleted:
            return heat_error(404, "Not Found", "The Stack could not be found.", "EntityNotFound")
        if stack.status.endswith("_IN_PROGRESS"):
            return heat_error(409, "Conflict", f"Stack {stack.name} is in progress", "ActionInProgress")
        params, problem = self._parameters(stack.template, stack.parameters, body.get("parameters") or {})
        if problem:
            return heat_error(400, "Bad Request", problem, "UnknownUserParameter")
        stack.parameters = params
        outcome = (("UPDATE_FAILED", self.update_failure) if self.update_failure
                   else ("UPDATE_COMPLETE", "Stack UPDATE completed successfully"))
        self._begin(stack, "UPDATE", outcome)
        stack.updated_time = datetime.now(UTC).isoformat()
        return Response(status_code=202)

    async def delete_stack(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._refuse(request)) is not None:
            return refused
        stack = self._live(request)
        if stack is None or stack.deleted:
            return heat_error(404, "Not Found", "The Stack could not be found.", "EntityNotFound")
        outcome = (("DELETE_FAILED", self.delete_failures.pop(0)) if self.delete_failures
                   else ("DELETE_COMPLETE", "Stack DELETE completed successfully"))
        self._begin(stack, "DELETE", outcome)
        return Response(status_code=204)

    # -- stack bodies ------------------------------------------------------------------
    def _body(self, stack: FakeStack, status: str, reason: str, updated: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": stack.id, "stack_name": stack.name, "stack_status": status,
            "stack_status_reason": reason, "updated_time": updated, "timeout_mins": stack.timeout_mins,
            "parameters": {k: str(v) for k, v in stack.parameters.items()},
            "links": [{"href": f"{self.url}/heat/v1/{self.project_id}/stacks/{stack.name}/{stack.id}",
                       "rel": "self"}],
        }
        if status.endswith("_COMPLETE") and not status.startswith("DELETE"):
            declared = stack.template.get("outputs") or {}
            values = self._outputs(stack)
            body["outputs"] = [{"output_key": key, "output_value": values.get(key),
                                "description": spec.get("description", "")}
                               for key, spec in declared.items()]
        return body

    def _outputs(self, stack: FakeStack) -> dict[str, Any]:
        masters = [f"172.24.4.{10 + i}" for i in range(int(stack.parameters["number_of_masters"]))]
        minions = [f"172.24.4.{100 + i}" for i in range(int(stack.parameters["number_of_minions"]))]
        ca = base64.b64encode(FAKE_CA_PEM.encode()).decode()
        return {
            "api_address": f"https://{masters[0]}:6443",
            "kube_masters": masters, "kube_minions": minions,
            "kube_masters_private": [f"10.0.0.{10 + i}" for i in range(len(masters))],
            "kube_minions_private": [f"10.0.0.{100 + i}" for i in range(len(minions))],
            "admin_token": stack.admin_token,
            "ca_cert": json.dumps({"ca": ca}),
            "kube_version": stack.parameters["kube_version"],
        }
