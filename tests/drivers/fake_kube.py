"""A stand-in Kubernetes API with just ``/version`` and ``/api/v1/nodes``, for the kubeconfig
driver's tests of what the embedded cluster does not do: client certificates, legacy master
labels, nodes without an InternalIP, 403 and 503 answers."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code}, status_code=code)


def node(name: str, addresses: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"addresses": [{"type": k, "address": v} for k, v in addresses.items()]}}


class FakeKube:
    def __init__(self, *, token: str | None = None, version: str = "v1.29.4") -> None:
        self.token = token
        self.version = version
        self.forbidden = False
        self.unavailable = 0
        self.paths: list[str] = []
        self.nodes = [
            node("cp-1", {"InternalIP": "192.168.1.10", "Hostname": "cp-1"},
                 {"node-role.kubernetes.io/master": ""}),
            node("cp-2", {"InternalIP": "192.168.1.11"}, {"node-role.kubernetes.io/control-plane": ""}),
            node("worker-1", {"ExternalIP": "203.0.113.7", "Hostname": "worker-1"}),
            node("worker-2", {"InternalIP": "192.168.1.21"}),
        ]
        self.app = Starlette(routes=[Route("/version", self.get_version),
                                     Route("/api/v1/nodes", self.list_nodes)])

    def _refuse(self, request: Request) -> Response | None:
        self.paths.append(request.url.path)
        if self.unavailable > 0:
            self.unavailable -= 1
            return status(503, "ServiceUnavailable", "the apiserver is restarting")
        if self.token is not None and request.headers.get("authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        if self.forbidden:
            return status(403, "Forbidden", 'nodes is forbidden: User "registrar" cannot list resource '
                                            '"nodes" in API group "" at the cluster scope')
        return None

    async def get_version(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        return JSONResponse({"major": "1", "minor": "29", "gitVersion": self.version,
                             "platform": "linux/amd64"})

    async def list_nodes(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        return JSONResponse({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
                             "items": self.nodes})
