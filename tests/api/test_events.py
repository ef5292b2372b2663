"""GET /v1/events on an embedded stack over real HTTP: a bay's life as events, resuming with
Last-Event-ID and since, kind and bay filters, tenancy, bad input, heartbeats, a token that
expires closing the stream, and a cursor behind retention getting ``reset``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bayport.db.base import utcnow
from bayport.db.events import prune
from bayport.db.tokens import issue_token
from tests.sse import frames, objects, until
from tests.stack import Stack, run_stack


@pytest.fixture
async def quick(tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack whose streams beat every 0.3 s (heartbeats and token checks are seen soon)."""
    async with run_stack(tmp_path, events_heartbeat_seconds=0.3) as s:
        yield s


def _complete(frame: object) -> bool:
    return getattr(frame, "event", "") == "message" and \
        frame.json.get("status") == "CREATE_COMPLETE"  # type: ignore[attr-defined]


async def test_a_bay_comes_up_as_events_and_the_stream_resumes(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "k8s")
        async with c.stream("GET", "/v1/events", params={"kind": "bay"}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            stream = frames(resp)
            bay = await stack.bay(c, "k8s", wait=False)
            seen = objects(await until(stream, _complete))
        assert seen[0]["status"] == "CREATE_IN_PROGRESS"
        assert all(e["kind"] == "bay" and e["uuid"] == bay["uuid"] for e in seen)
        assert seen[0]["action"] == "created" and seen[-1]["action"] == "updated"
        ids = [e["id"] for e in seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        # Resuming after the first event replays the rest, by header or by query.
        for kwargs in ({"headers": {"Last-Event-ID": str(ids[0])}}, {"params": {"since": ids[0]}}):
            params = {"kind": "bay", **kwargs.get("params", {})}
            async with c.stream("GET", "/v1/events", params=params,
                                headers=kwargs.get("headers")) as resp:
                again = objects(await until(frames(resp), _complete))
            assert [e["id"] for e in again] == ids[1:]
        # Without a cursor a stream starts now: the next thing it sees is the delete.
        async with c.stream("GET", "/v1/events", params={"bay": "testbay"}) as resp:
            stream = frames(resp)
            assert (await c.delete(f"/v1/bays/{bay['uuid']}")).status_code == 204
            gone = objects(await until(stream, lambda f: f.event == "message"
                                       and f.json["action"] == "deleted" and f.json["kind"] == "bay"))
        assert gone[0]["status"] == "DELETE_IN_PROGRESS" and gone[0]["id"] > ids[-1]


async def test_another_project_sees_none_of_it(stack: Stack) -> None:
    alice, bob = await stack.token("alice"), await stack.token("bob")
    async with stack.client(alice) as a, stack.client(bob) as b, stack.client() as admin:
        await stack.baymodel(a, "k8s")
        async with b.stream("GET", "/v1/events", params={"since": 0}) as bob_resp, \
                admin.stream("GET", "/v1/events", params={"since": 0, "all_projects": 1}) as adm:
            await stack.bay(a, "k8s", name="secret")
            await stack.baymodel(b, "bobs")
            # Bob's own change is the proof that his stream delivered past Alice's.
            bob_seen = objects(await until(frames(bob_resp), lambda f: f.event == "message"))
            all_seen = objects(await until(frames(adm), _complete))
        assert [(e["kind"], e["name"]) for e in bob_seen] == [("baymodel", "bobs")]
        assert {e["project_id"] for e in all_seen} == {"alice"}
        resp = await b.get("/v1/events", params={"bay": "secret"})
        assert resp.status_code == 404
        resp = await b.get("/v1/events", params={"all_projects": 1})
        assert resp.status_code == 403 and resp.json()["errors"][0]["detail"]


async def test_bad_input_is_a_4xx_naming_the_field(stack: Stack) -> None:
    async with stack.client() as c:
        for params, headers, field in (({"kind": "bay,nope"}, {}, "kind"),
                                       ({"since": "-3"}, {}, "since"),
                                       ({}, {"Last-Event-ID": "x1"}, "Last-Event-ID")):
            resp = await c.get("/v1/events", params=params, headers=headers)
            assert resp.status_code == 400, resp.text
            assert field in resp.text
    async with stack.client("") as anonymous:
        resp = await anonymous.get("/v1/events", headers={"X-Auth-Token": ""})
        assert resp.status_code == 401


async def test_heartbeats_and_an_expiring_token_closes_the_stream(quick: Stack) -> None:
    async with quick.state.sessionmaker() as session:
        token = await issue_token(session, project="p", user="u", role="reader",
                                  expires_at=utcnow() + timedelta(seconds=1.5))
        await session.commit()
    async with quick.client(token) as c, c.stream("GET", "/v1/events") as resp:
        assert resp.status_code == 200
        seen = await until(frames(resp), lambda f: f.event == "close", timeout=15)
    assert any("keepalive" in f.comments for f in seen if f.event == "comment")
    assert "no longer valid" in seen[-1].json["reason"]


async def test_a_cursor_behind_retention_gets_reset(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "one")
        async with stack.state.sessionmaker() as session:
            through = await prune(session, keep=timedelta(seconds=-1), keep_rows=1)
        assert through >= 1
        async with c.stream("GET", "/v1/events", params={"since": 0}) as resp:
            stream = frames(resp)
            reset = (await until(stream, lambda f: f.event != "comment"))[-1]
            assert reset.event == "reset" and reset.id == str(through)
            await stack.baymodel(c, "two")
            after = objects(await until(stream, lambda f: f.event == "message"))
        assert after[0]["name"] == "two" and after[0]["id"] > through
        # A cursor this log never handed out is a reset too.
        async with c.stream("GET", "/v1/events", params={"since": 10**9}) as resp:
            frame = (await until(frames(resp), lambda f: f.event != "comment"))[-1]
            assert frame.event == "reset"
