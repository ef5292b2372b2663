"""Bounds on what a request may carry: each was accepted before (a 50 MB label was stored and
listed back; 10,000 labels; a NUL byte stored on SQLite and a 500 on PostgreSQL; node_count 256
failing late; a long bay name failing at node naming) and is now a 4xx naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bayport.api.limits import MAX_BODY_BYTES, nul_path
from tests.pg import fresh_database
from tests.stack import Stack, run_stack


def first_error(resp: object) -> dict[str, object]:
    body = resp.json()  # type: ignore[attr-defined]
    return dict(body["errors"][0])


async def test_a_huge_label_value_and_too_many_labels_are_400s(stack: Stack) -> None:
    async with stack.client() as c:
        resp = await c.post("/v1/baymodels", json={"name": "big", "labels": {"x": "y" * 70_000}})
        assert resp.status_code == 400
        assert "label 'x'" in first_error(resp)["detail"]  # type: ignore[operator]
        many = {f"k{i}": "v" for i in range(10_000)}
        resp = await c.post("/v1/baymodels", json={"name": "many", "labels": many})
        assert resp.status_code == 400 and "at most 100 labels" in resp.text
        resp = await c.post("/v1/baymodels", json={"name": "empty-key", "labels": {"": "v"}})
        assert resp.status_code == 400
        await stack.baymodel(c, "ok", labels={"kubeconfig": "Q" * 40_000})
        patch = [{"op": "add", "path": "/labels/huge", "value": "z" * 70_000}]
        resp = await c.patch("/v1/baymodels/ok", json=patch)
        assert resp.status_code == 400 and "label 'huge'" in resp.text
        assert (await c.get("/v1/baymodels")).status_code == 200


async def test_a_body_over_the_limit_is_413_before_it_is_read(stack: Stack) -> None:
    async with stack.client() as c:
        resp = await c.post("/v1/baymodels", content=b'{"name": "' + b"a" * MAX_BODY_BYTES + b'"}',
                            headers={"Content-Type": "application/json"})
        assert resp.status_code == 413
        assert first_error(resp)["code"] == "RequestTooLarge"

        async def chunks():  # type: ignore[no-untyped-def]
            yield b'{"name": "'
            for _ in range(3):
                yield b"b" * MAX_BODY_BYTES
            yield b'"}'
        resp = await c.post("/v1/baymodels", content=chunks(),
                            headers={"Content-Type": "application/json"})
        assert resp.status_code == 413


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "a\x00b"}, "name"),
    ({"name": "n", "labels": {"k": "v\x00"}}, "labels.k"),
    ({"name": "n", "labels": {"k\x00": "v"}}, "labels.k\x00"),
])
async def test_nul_characters_are_400s_naming_the_field(stack: Stack, body: dict[str, object],
                                                        field: str) -> None:
    async with stack.client() as c:
        resp = await c.post("/v1/baymodels", content=json.dumps(body),
                            headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, resp.text
        assert first_error(resp)["field"] == field
        assert (await c.get("/v1/baymodels/a%00b")).status_code == 400
        assert (await c.get("/v1/baymodels?marker=%00")).status_code == 400
        listed = (await c.get("/v1/baymodels")).json()["baymodels"]
        assert listed == []


def test_nul_path_names_nested_fields() -> None:
    assert nul_path({"vols": ["a", "b\x00"]}) == "vols[1]"
    assert nul_path({"a": {"b": 1, "c": "ok"}}) is None
    assert nul_path("\x00") == "body"


async def test_escaped_backslash_u0000_text_is_not_a_nul(stack: Stack) -> None:
    async with stack.client() as c:
        resp = await c.post("/v1/baymodels", content=b'{"name": "lit", "image_id": "a\\\\u0000"}',
                            headers={"Content-Type": "application/json"})
        assert resp.status_code == 201, resp.text
        assert resp.json()["image_id"] == "a\\u0000"


async def test_node_count_beyond_what_the_driver_hosts_is_refused_up_front(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "k8s", labels={"runtime": "simulated"})
        resp = await c.post("/v1/bays", json={"name": "huge", "baymodel_id": "k8s",
                                              "node_count": 256})
        assert resp.status_code == 400
        error = first_error(resp)
        assert error["field"] == "node_count"
        assert "at most 240 nodes" in str(error["detail"])
        assert (await c.get("/v1/bays")).json()["bays"] == []
        bay = await stack.bay(c, "k8s", name="small")
        resp = await c.patch(f"/v1/bays/{bay['uuid']}",
                             json=[{"op": "replace", "path": "/node_count", "value": 300}])
        assert resp.status_code == 400 and "at most 240 nodes" in resp.text


async def test_a_long_bay_name_makes_a_working_bay(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "k8s", labels={"runtime": "simulated"})
        bay = await stack.bay(c, "k8s", name="a-very-long-bay-name-" + "x" * 200, node_count=2)
        assert bay["status"] == "CREATE_COMPLETE", bay["status_reason"]


@pytest.mark.postgres
async def test_nul_characters_are_400s_on_postgresql_too(tmp_path: Path) -> None:
    """PostgreSQL refuses NUL in text with an error that used to surface as a 500."""
    async with fresh_database() as url, run_stack(tmp_path, database_url=url) as stack, \
            stack.client() as c:
        for body in ({"name": "a\x00b"}, {"name": "n", "labels": {"k": "\x00"}}):
            resp = await c.post("/v1/baymodels", json=body)
            assert resp.status_code == 400, resp.text
        for path in ("/v1/baymodels/a%00b", "/v1/bays/a%00", "/v1/tenants/%00",
                     "/v1/bays?marker=%00"):
            assert (await c.get(path)).status_code == 400, path
        tenant = await c.post("/v1/tenants", json={"name": "t\x00", "bay": "x"})
        assert tenant.status_code == 400
