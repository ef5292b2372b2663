"""Fixtures of the RPC contract suite: every test runs once per backend.

``bus`` is a connected transport for ``memory://`` and for RabbitMQ; ``topic`` is
unique per test and its queue is deleted afterwards, so concurrent runs on one
broker never see each other's messages; ``serve`` starts servers that are
stopped at teardown.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bayport import errors
from bayport.objects.base import BayportObject
from bayport.objects.context import RequestContext
from bayport.rpc import RPCServer, Transport, current_call, get_transport, is_redelivered
from tests.conftest import require

AMQP_URL = os.environ.get("BAYPORT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def rabbitmq_reachable(url: str = AMQP_URL) -> bool:
    from yarl import URL

    parsed = URL(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5672), timeout=1.0):
            return True
    except OSError:
        return False


class Widget(BayportObject):
    """A registered object used only by these tests (travels as ``bayport_object.*``)."""

    OBJ_NAME = "RpcTestWidget"
    VERSION = "1.2"

    name: str
    size: int = 0
    tags: list[str] = []


class Endpoint:
    """The server side of the contract tests: one method per behaviour under test."""

    RPC_API_VERSION = "1.2"

    def __init__(self, label: str = "server", *, hang: bool = False) -> None:
        self.label = label
        self.hang = hang
        self.casts: list[Any] = []
        self.cast_arrived = asyncio.Event()
        self.handled: list[int] = []
        self.active = 0
        self.max_active = 0
        self.started = asyncio.Event()

    async def echo(self, ctx: RequestContext, **args: Any) -> dict[str, Any]:
        info = current_call()
        return {"args": args, "context": ctx.to_wire(), "method": info.method, "version": info.version}

    async def describe(self, ctx: RequestContext, widget: Widget, batch: list[Widget],
                       by_name: dict[str, Widget]) -> dict[str, Any]:
        def facts(obj: Any) -> dict[str, Any]:
            return {"class": type(obj).__name__, "changes": sorted(obj.obj_what_changed()),
                    "size": obj.size}

        return {"widget": facts(widget), "batch": [facts(w) for w in batch],
                "by_name": {k: facts(v) for k, v in by_name.items()}, "echo": [widget, {"inner": batch}]}

    async def fail(self, ctx: RequestContext, code: str, detail: str, **kwargs: Any) -> None:
        raise errors.error_class_for(code)(detail, **kwargs)

    async def crash(self, ctx: RequestContext) -> None:
        raise ValueError("boom")

    async def remember(self, ctx: RequestContext, item: Any) -> None:
        self.casts.append(item)
        self.cast_arrived.set()

    async def work(self, ctx: RequestContext, n: int, delay: float = 0.0) -> dict[str, Any]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.started.set()
        try:
            if self.hang:
                await asyncio.Event().wait()
            await asyncio.sleep(delay)
        finally:
            self.active -= 1
        self.handled.append(n)
        return {"n": n, "server": self.label, "redelivered": is_redelivered()}

    async def _private(self, ctx: RequestContext) -> str:
        return "never over the bus"

    def not_a_coroutine(self, ctx: RequestContext) -> str:
        return "never over the bus"


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
def bus_url(request: pytest.FixtureRequest) -> str:
    if request.param == "amqp":
        require(rabbitmq_reachable(), f"RabbitMQ not reachable at {AMQP_URL}")
        return AMQP_URL
    return "memory://"


@pytest.fixture
async def bus(bus_url: str) -> AsyncIterator[Transport]:
    transport = get_transport(bus_url)
    await transport.connect()
    yield transport
    await transport.close()


@pytest.fixture
async def topic(bus: Transport) -> AsyncIterator[str]:
    name = f"test.rpc.{uuid.uuid4().hex[:12]}"
    yield name
    await bus.delete_topic(name)


ServeFactory = Callable[..., Awaitable[RPCServer]]


@pytest.fixture
async def serve(bus: Transport, topic: str) -> AsyncIterator[ServeFactory]:
    servers: list[RPCServer] = []

    async def start(endpoint: object, **options: Any) -> RPCServer:
        server = RPCServer(bus, topic, endpoint, **options)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(grace=1.0)
