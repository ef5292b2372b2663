"""Tokens, roles and tenancy: 401 without a valid token, 403 for readers writing,
404 (never 403) for another project's objects, admins see all with all_projects."""

from __future__ import annotations

import hashlib
import os
import stat

from sqlalchemy import select

from bayport.db.models import Token
from tests.stack import Stack


async def test_no_or_bad_token_is_401(stack: Stack) -> None:
    async with stack.client() as c:
        resp = await c.get("/v1/baymodels", headers={"X-Auth-Token": ""})
        assert resp.status_code == 401
        resp = await c.get("/v1/baymodels", headers={"X-Auth-Token": "bpt_nope"})
        assert resp.status_code == 401 and "not valid" in resp.text
    async with stack.client(token="") as c:
        del c.headers["X-Auth-Token"]
        assert (await c.get("/v1/bays")).status_code == 401


async def test_tokens_are_stored_hashed_and_admin_file_is_private(stack: Stack) -> None:
    token = await stack.token("p1", "alice", "member")
    async with stack.state.sessionmaker() as session:
        hashes = set((await session.execute(select(Token.token_hash))).scalars())
    assert token not in hashes
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    mode = stat.S_IMODE(os.stat(stack.settings.admin_token_file).st_mode)
    assert mode == 0o600


async def test_project_isolation_and_roles(stack: Stack) -> None:
    alice = await stack.token("p1", "alice", "member")
    bob = await stack.token("p2", "bob", "member")
    reader = await stack.token("p1", "rita", "reader")
    async with stack.client(alice) as a, stack.client(bob) as b, stack.client(reader) as r:
        tm = await stack.baymodel(a, "alice-tm")
        assert (await b.get(f"/v1/baymodels/{tm['uuid']}")).status_code == 404
        assert (await b.get("/v1/baymodels/alice-tm")).status_code == 404
        assert (await b.delete(f"/v1/baymodels/{tm['uuid']}")).status_code == 404
        assert (await b.get("/v1/baymodels")).json()["baymodels"] == []
        assert (await r.get(f"/v1/baymodels/{tm['uuid']}")).status_code == 200
        denied = await r.post("/v1/baymodels", json={"name": "x"})
        assert denied.status_code == 403 and "reader" in denied.text
        assert (await a.get("/v1/baymodels?all_projects=true")).status_code == 403
        # Public templates are visible to everyone, writable only by their owner.
        await a.patch(f"/v1/baymodels/{tm['uuid']}",
                      json=[{"op": "replace", "path": "/public", "value": True}])
        assert (await b.get(f"/v1/baymodels/{tm['uuid']}")).status_code == 200
        assert (await b.delete(f"/v1/baymodels/{tm['uuid']}")).status_code == 403
        # Only admins issue tokens.
        assert (await a.post("/v1/tokens", json={"project": "p1", "user": "x"})).status_code == 403
    async with stack.client() as admin:
        everything = (await admin.get("/v1/baymodels?all_projects=true")).json()["baymodels"]
        assert tm["uuid"] in [t["uuid"] for t in everything]
        bad_role = await admin.post("/v1/tokens", json={"project": "p1", "user": "x", "role": "god"})
        assert bad_role.status_code == 400 and "role" in bad_role.text


async def test_versions_and_microversion_header(stack: Stack) -> None:
    async with stack.client() as c:
        root = (await c.get("/")).json()
        v1 = root["versions"][0]
        assert v1["id"] == "v1" and v1["status"] == "CURRENT" and v1["min_version"] == "1.1"
        resp = await c.get("/v1", headers={"OpenStack-API-Version": "container-infra latest"})
        assert resp.headers["openstack-api-version"] == f"container-infra {v1['max_version']}"
        assert resp.headers["x-openstack-request-id"].startswith("req-")
        resp = await c.get("/v1", headers={"OpenStack-API-Version": "container-infra 1.3"})
        assert resp.headers["openstack-api-version"] == "container-infra 1.3"
        bad = await c.get("/v1", headers={"OpenStack-API-Version": "container-infra 9.0"})
        assert bad.status_code == 406 and "not supported" in bad.text
        spec = (await c.get("/openapi.json")).json()
        assert "/v1/bays" in spec["paths"] and "/v1/clustertemplates/{ident}" in spec["paths"]
