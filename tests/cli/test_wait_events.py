"""``--wait``'s two paths with the server faked at its HTTP API (httpx.MockTransport): on the
event stream the bay is read only when an event says something changed, and every status an
event carried is shown; without a stream (an older server: 404) the wait polls as before."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import typer

from bayport.cli.bays import wait_for_bay
from bayport.cli.client import Client

UUID = "0b1e0c39-8a8f-4a52-9a55-8d7e44b4f8a1"


def _client(handler: Any) -> Client:
    client = Client(url="http://bayport.invalid", token="t")
    client.http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(handler))
    return client


def _event(i: int, status: str) -> bytes:
    return (b'id: %d\ndata: {"id": %d, "kind": "bay", "action": "updated", "uuid": "%s", '
            b'"name": "b", "status": "%s", "reason": null}\n\n' % (i, i, UUID.encode(),
                                                                status.encode()))


def test_the_stream_is_followed(capsys: pytest.CaptureFixture[str]) -> None:
    gets: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events":
            assert request.url.params["bay"] == UUID
            body = (b": bayport events\n\n" + _event(1, "UPDATE_IN_PROGRESS")
                    + b"id: 2\ndata: {\"uuid\": \"someone-else\", \"status\": \"X\"}\n\n"
                    + _event(3, "UPDATE_COMPLETE"))
            return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
        gets.append(request.url.path)
        status = "UPDATE_IN_PROGRESS" if len(gets) == 1 else "UPDATE_COMPLETE"
        return httpx.Response(200, json={"uuid": UUID, "name": "b", "status": status})

    bay = wait_for_bay(_client(handler), f"/v1/bays/{UUID}",
                       initial={"uuid": UUID, "name": "b", "status": "UPDATE_IN_PROGRESS"})
    # (the event about another object was not a reason to read the bay)
    assert bay["status"] == "UPDATE_COMPLETE"
    # Once before the events, once when the last one said it had settled: no polling.
    assert len(gets) == 2
    out = capsys.readouterr().out
    assert out.splitlines() == ["b: UPDATE_IN_PROGRESS", "b: UPDATE_COMPLETE"]


def test_without_a_stream_the_wait_polls(capsys: pytest.CaptureFixture[str]) -> None:
    gets: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events":
            return httpx.Response(404, json={"errors": []})
        gets.append(request.url.path)
        status = "CREATE_FAILED" if len(gets) >= 3 else "CREATE_IN_PROGRESS"
        return httpx.Response(200, json={"uuid": UUID, "name": "b", "status": status,
                                         "status_reason": "no capacity" if len(gets) >= 3 else None})

    with pytest.raises(typer.Exit) as exited:
        wait_for_bay(_client(handler), f"/v1/bays/{UUID}")
    assert exited.value.exit_code == 2 and len(gets) == 3
    assert capsys.readouterr().out.splitlines() == ["b: CREATE_IN_PROGRESS",
                                                    "b: CREATE_FAILED (no capacity)"]
