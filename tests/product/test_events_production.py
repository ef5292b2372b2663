"""Events across processes in production mode: ``bayport api`` and two ``bayport conductor``
processes (+ netd) on PostgreSQL and RabbitMQ. A bay's status is written by a conductor; the
event it makes (trigger + NOTIFY at commit) reaches an SSE client of the API process, and a
client resuming with Last-Event-ID gets the same events from the shared log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_production import pg_url, vhost  # noqa: F401 - fixtures used by name
from tests.product.production import production
from tests.product.test_production_faults import simulated_bay
from tests.sse import frames, objects, until

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.mark.timeout(300)
async def test_a_conductors_change_reaches_a_stream_on_the_api(tmp_path: Path, pg_url: str,  # noqa: F811
                                                               vhost: str) -> None:  # noqa: F811
    async with production(tmp_path, pg_url, vhost, heartbeat_interval="0.5",
                          default_runtime="simulated") as prod, prod.http() as c:
        async with c.stream("GET", "/v1/events", params={"kind": "bay"}) as resp:
            assert resp.status_code == 200
            stream = frames(resp)
            await simulated_bay(prod, "evbay")
            seen = objects(await until(stream, lambda f: f.event == "message"
                                       and f.json["status"] == "CREATE_COMPLETE", timeout=120))
        assert seen[0]["status"] == "CREATE_IN_PROGRESS"   # written by the API
        assert seen[-1]["name"] == "evbay"                 # CREATE_COMPLETE: by a conductor
        ids = [e["id"] for e in seen]
        assert ids == sorted(ids)
        async with c.stream("GET", "/v1/events", params={"kind": "bay", "since": ids[0]}) as resp:
            again = objects(await until(frames(resp), lambda f: f.event == "message"
                                        and f.json["status"] == "CREATE_COMPLETE"))
        assert [e["id"] for e in again] == ids[1:]
