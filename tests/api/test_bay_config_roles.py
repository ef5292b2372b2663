"""GET /v1/bays/{id}/config by role: a reader's kubeconfig reads the bay and writes nothing; a
member's is the admin one; a reader of a bay whose driver has no read-only credential gets 403,
never the admin token. The secrets on disk are the owner's alone (0600)."""

from __future__ import annotations

import os
import stat

import yaml
from sqlalchemy import update

from bayport.db.models import BayCredential
from tests.stack import Stack, kube_get, kube_request

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mine"},
       "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
PODS = "/api/v1/namespaces/default/pods"


def token_of(kubeconfig: str) -> str:
    return str(yaml.safe_load(kubeconfig)["users"][0]["user"]["token"])


async def test_a_reader_gets_a_kubeconfig_that_only_reads(stack: Stack) -> None:
    member = await stack.token("p1", "mia", "member")
    reader = await stack.token("p1", "rita", "reader")
    async with stack.client(member) as m, stack.client(reader) as r:
        await stack.baymodel(m, "k8s")
        bay = await stack.bay(m, "k8s", name="rb")
        member_config = (await m.get(f"/v1/bays/{bay['uuid']}/config")).text
        answer = await r.get(f"/v1/bays/{bay['uuid']}/config")
        assert answer.status_code == 200, answer.text
        reader_config = answer.text
    async with stack.state.sessionmaker() as session:
        cred = await session.get(BayCredential, bay["uuid"])
    assert cred is not None and cred.reader_token and cred.network_token
    assert token_of(member_config) == cred.token
    assert token_of(reader_config) == cred.reader_token
    assert len({cred.token, cred.reader_token, cred.network_token}) == 3
    assert yaml.safe_load(reader_config)["users"][0]["name"] == "rb-reader"

    assert (await kube_request(member_config, "POST", PODS, POD)).status_code == 201
    listed = await kube_get(reader_config, PODS)
    assert listed.status_code == 200 and [p["metadata"]["name"] for p in listed.json()["items"]] == ["mine"]
    for method, path, body in (("POST", PODS, {**POD, "metadata": {"name": "readers"}}),
                               ("DELETE", f"{PODS}/mine", None)):
        refused = await kube_request(reader_config, method, path, body)
        assert refused.status_code == 403, refused.text
        assert 'User "bayport:reader" cannot' in refused.json()["message"]
    assert (await kube_get(member_config, f"{PODS}/mine")).status_code == 200
    # The network controller's token goes to no one.
    async with stack.client() as admin:
        admin_config = (await admin.get(f"/v1/bays/{bay['uuid']}/config")).text
    assert token_of(admin_config) == cred.token


async def test_a_reader_of_a_bay_without_read_only_credential_gets_403(stack: Stack) -> None:
    member = await stack.token("p1", "mia", "member")
    reader = await stack.token("p1", "rita", "reader")
    async with stack.client(member) as m, stack.client(reader) as r:
        await stack.baymodel(m, "k8s")
        bay = await stack.bay(m, "k8s", name="old")
        # What a heat bay records (admin token only), then a kubeconfig bay (the whole kubeconfig).
        for values in ({"reader_token": None}, {"reader_token": None, "kubeconfig": "admin: yes"}):
            async with stack.state.sessionmaker() as session:
                await session.execute(update(BayCredential)
                                      .where(BayCredential.bay_uuid == bay["uuid"]).values(**values))
                await session.commit()
            refused = await r.get(f"/v1/bays/{bay['uuid']}/config")
            assert refused.status_code == 403, refused.text
            detail = refused.json()["errors"][0]["detail"]
            assert "no read-only credential" in detail
            async with stack.state.sessionmaker() as session:
                cred = await session.get(BayCredential, bay["uuid"])
            assert cred is not None and cred.token is not None
            assert cred.token not in refused.text and "admin: yes" not in refused.text
            assert (await m.get(f"/v1/bays/{bay['uuid']}/config")).status_code == 200


async def test_database_and_bay_tokens_are_private(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "k8s")
        bay = await stack.bay(c, "k8s", name="priv")
    database = stack.settings.data_dir / "bayport.db"
    bay_dir = stack.settings.data_dir / "bays" / bay["uuid"]
    files = [database, bay_dir / "token", bay_dir / "reader-token", bay_dir / "network-token",
             bay_dir / "objects.sqlite"]
    files += [p for p in (database.with_name("bayport.db-wal"), database.with_name("bayport.db-shm"))
              if p.exists()]
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(bay_dir).st_mode) == 0o700
