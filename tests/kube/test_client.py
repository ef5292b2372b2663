"""kube/client.py against a real HTTP server speaking the Kubernetes wire format."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bayport import errors
from bayport.kube.client import ClusterAccess, cluster_errors, make_client
from tests.kube.local_http import serve

seen: list[dict[str, Any]] = []


def status(code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                            "reason": reason, "message": message}
    if causes:
        body["details"] = {"causes": causes}
    return JSONResponse(body, status_code=code)


async def pod(request: Request) -> Response:
    seen.append({"auth": request.headers.get("authorization"), "path": request.url.path})
    name = request.path_params["name"]
    if name == "missing":
        return status(404, "NotFound", 'pods "missing" not found')
    return JSONResponse({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": name, "namespace": "default", "resourceVersion": "7"}})


async def create(request: Request) -> Response:
    return status(422, "Invalid", 'Pod "x" is invalid: spec.containers[0].image: Required value',
                  [{"field": "spec.containers[0].image", "message": "Required value",
                    "reason": "FieldValueRequired"}])


app = Starlette(routes=[Route("/api/v1/namespaces/default/pods/{name}", pod),
                        Route("/api/v1/namespaces/default/pods", create, methods=["POST"])])


async def test_client_sends_the_bearer_token_and_decodes_objects() -> None:
    async with serve(app) as url:
        client = make_client(ClusterAccess(server=url, token="s3cret"))
        try:
            got = await client.get(Pod, "web", namespace="default")
        finally:
            await client.close()
    assert got.metadata is not None and got.metadata.name == "web"
    assert seen[-1] == {"auth": "Bearer s3cret", "path": "/api/v1/namespaces/default/pods/web"}


async def test_cluster_refusals_keep_status_reason_and_field_causes() -> None:
    async with serve(app) as url:
        client = make_client(ClusterAccess(server=url, token="t"))
        try:
            with pytest.raises(errors.ClusterAPIError) as missing:
                async with cluster_errors("get"):
                    await client.get(Pod, "missing", namespace="default")
            with pytest.raises(errors.ClusterAPIError) as invalid:
                async with cluster_errors("create"):
                    await client.create(Pod.from_dict({"metadata": {"name": "x"}}), namespace="default")
        finally:
            await client.close()
    assert missing.value.http_status == 404
    assert invalid.value.http_status == 400
    assert invalid.value.field == "spec.containers[0].image"
    assert "spec.containers[0].image" in invalid.value.detail


async def test_unreachable_cluster_is_a_temporary_error() -> None:
    async with serve(app) as url:
        pass
    client = make_client(ClusterAccess(server=url, token="t"))
    try:
        with pytest.raises(errors.TemporaryError):
            async with cluster_errors("get"):
                await client.get(Pod, "web", namespace="default")
    finally:
        await client.close()


def test_a_stored_kubeconfig_wins_over_server_and_token() -> None:
    text = ("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
            "    server: https://k.example:6443\nusers:\n- name: u\n  user:\n    token: abc\n"
            "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n")
    access = ClusterAccess(server="http://ignored", token="x", kubeconfig=text)
    assert access.kubeconfig_dict()["clusters"][0]["cluster"]["server"] == "https://k.example:6443"
    with pytest.raises(errors.PermanentError):
        make_client(ClusterAccess(server="x", kubeconfig="- just\n- a list\n"))


async def test_clients_are_cached_per_bay_and_rebuilt_when_credentials_change(tmp_path: Any) -> None:
    from bayport.db.base import Base, make_engine, make_sessionmaker
    from bayport.db.models import BayCredential, BayModelRow, BayRow
    from bayport.kube.client import ClusterClients

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        model = BayModelRow(project_id="p", user_id="u")
        session.add(model)
        await session.flush()
        bay = BayRow(project_id="p", user_id="u", baymodel_id=model.uuid)
        session.add(bay)
        await session.flush()
        session.add(BayCredential(bay_uuid=bay.uuid, server="http://127.0.0.1:1", token="a"))
        await session.commit()
    clients = ClusterClients(sessions)
    try:
        first = await clients.get(bay.uuid)
        assert await clients.get(bay.uuid) is first
        assert await clients.get(bay.uuid, refresh=True) is first
        async with sessions() as session:
            cred = await session.get(BayCredential, bay.uuid)
            assert cred is not None
            cred.token = "b"
            await session.commit()
        second = await clients.get(bay.uuid, refresh=True)
        assert second is not first
        with pytest.raises(errors.InvalidState):
            await clients.get("00000000-0000-0000-0000-000000000000")
    finally:
        await clients.close()
        await engine.dispose()
