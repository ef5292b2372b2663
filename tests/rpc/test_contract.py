"""The bus contract, run once on the in-memory bus and once on RabbitMQ.

What the API and the conductors rely on: a call returns the handler's result or
re-raises its error, a cast is delivered once, objects keep their class and
changes, servers on one topic compete for work within their concurrency, stop is
graceful, and a message that cannot be decoded is dropped rather than looped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bayport import errors
from bayport.objects.context import RequestContext
from bayport.rpc import (
    MalformedMessageError,
    RemoteError,
    RPCClient,
    Transport,
    UnknownMethodError,
    VersionMismatchError,
)
from bayport.rpc.envelope import decode_reply
from tests.rpc.conftest import Endpoint, ServeFactory, Widget

CTX = RequestContext(request_id="req-contract", user_id="user-1", project_id="proj-1", roles=["member"])


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_call_returns_the_result_and_carries_the_context(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    await serve(Endpoint())
    client = RPCClient(bus, topic, timeout=5)

    result = await client.call(CTX, "echo", name="testbay", node_count=1, labels={"a": "b"}, ids=[1, 2])

    assert result["args"] == {"name": "testbay", "node_count": 1, "labels": {"a": "b"}, "ids": [1, 2]}
    assert result["context"] == CTX.to_wire()
    assert result["method"] == "echo"
    assert result["version"] == "1.0"


async def test_cast_is_delivered_once(bus: Transport, topic: str, serve: ServeFactory) -> None:
    endpoint = Endpoint()
    await serve(endpoint)
    client = RPCClient(bus, topic, timeout=5)

    for item in range(5):
        await client.cast(CTX, "remember", item=item)

    await wait_for(lambda: len(endpoint.casts) == 5)
    await asyncio.sleep(0.1)
    assert sorted(endpoint.casts) == [0, 1, 2, 3, 4]


async def test_object_arguments_round_trip_with_their_changes(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    await serve(Endpoint())
    client = RPCClient(bus, topic, timeout=5)
    fresh = Widget(name="new", size=3)
    stored = Widget.loaded(name="stored", size=1, tags=["a"])
    stored.size = 2

    result = await client.call(CTX, "describe", widget=fresh, batch=[stored, fresh],
                               by_name={"stored": stored})

    assert result["widget"] == {"class": "Widget", "changes": ["name", "size"], "size": 3}
    assert result["batch"] == [{"class": "Widget", "changes": ["size"], "size": 2},
                               {"class": "Widget", "changes": ["name", "size"], "size": 3}]
    assert result["by_name"] == {"stored": {"class": "Widget", "changes": ["size"], "size": 2}}
    echoed, nested = result["echo"]
    assert isinstance(echoed, Widget) and echoed == fresh
    assert echoed.obj_what_changed() == {"name", "size"}
    assert [type(w) for w in nested["inner"]] == [Widget, Widget]
    assert nested["inner"][0].obj_what_changed() == {"size"}


@pytest.mark.parametrize(("code", "kwargs", "cls"), [
    ("NotFound", {"field": "bay_uuid"}, errors.NotFound),
    ("InvalidState", {"current": "CREATE_IN_PROGRESS"}, errors.InvalidState),
    ("TemporaryError", {"delay": 4.0}, errors.TemporaryError),
    ("ClusterAPIError", {"status": 422}, errors.ClusterAPIError),
])
async def test_handler_errors_are_reraised_with_class_and_detail(
        bus: Transport, topic: str, serve: ServeFactory, code: str, kwargs: dict[str, Any],
        cls: type[errors.BayportError]) -> None:
    await serve(Endpoint())
    client = RPCClient(bus, topic, timeout=5)

    with pytest.raises(cls) as raised:
        await client.call(CTX, "fail", code=code, detail=f"{code} happened", **kwargs)

    assert type(raised.value) is cls
    assert raised.value.detail == f"{code} happened"
    assert raised.value.field == kwargs.get("field")
    if code == "TemporaryError":
        assert isinstance(raised.value, errors.TemporaryError) and raised.value.delay == 4.0
    if code == "ClusterAPIError":
        assert isinstance(raised.value, errors.ClusterAPIError) and raised.value.http_status == 422
    if code == "InvalidState":
        assert raised.value.extra == {"current": "CREATE_IN_PROGRESS"}


async def test_unexpected_exceptions_become_remote_errors_and_are_logged(
        bus: Transport, topic: str, serve: ServeFactory, caplog: pytest.LogCaptureFixture) -> None:
    await serve(Endpoint())
    client = RPCClient(bus, topic, timeout=5)

    with caplog.at_level(logging.ERROR, logger="bayport.rpc.server"), pytest.raises(RemoteError) as raised:
        await client.call(CTX, "crash")

    assert raised.value.detail == "ValueError: boom"
    assert raised.value.extra["exc_type"] == "ValueError"
    logged = [r for r in caplog.records if "crash" in r.getMessage()]
    assert logged and logged[0].exc_info is not None


@pytest.mark.parametrize("method", ["no_such_method", "_private", "not_a_coroutine", "__init__"])
async def test_only_public_coroutines_can_be_called(
        bus: Transport, topic: str, serve: ServeFactory, method: str) -> None:
    await serve(Endpoint())
    client = RPCClient(bus, topic, timeout=5)

    with pytest.raises(UnknownMethodError, match=method):
        await client.call(CTX, method)


async def test_arguments_the_handler_does_not_take_are_invalid_input(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    await serve(Endpoint())
    client = RPCClient(bus, topic, timeout=5)

    with pytest.raises(errors.InvalidInput, match="work"):
        await client.call(CTX, "work", n=1, colour="blue")


async def test_call_times_out_when_no_server_is_listening(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    server = await serve(Endpoint())
    await server.stop()
    client = RPCClient(bus, topic, timeout=30)

    started = time.monotonic()
    with pytest.raises(errors.RPCTimeout) as raised:
        await client.call(CTX, "echo", timeout=0.3)

    assert time.monotonic() - started < 2.0
    assert "'echo'" in raised.value.detail and topic in raised.value.detail and "0.3 s" in raised.value.detail
    assert raised.value.extra == {"method": "echo", "topic": topic, "timeout": 0.3}


async def test_an_expired_call_is_not_handled_by_a_late_server(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    server = await serve(Endpoint())
    await server.stop()
    client = RPCClient(bus, topic)
    with pytest.raises(errors.RPCTimeout):
        await client.call(CTX, "work", timeout=0.2, n=1)

    late = Endpoint("late")
    await serve(late)
    assert await client.call(CTX, "work", timeout=5, n=2) == {"n": 2, "server": "late", "redelivered": False}
    assert late.handled == [2]


async def test_a_topic_no_server_ever_listened_on_is_refused_at_once(bus: Transport, topic: str) -> None:
    client = RPCClient(bus, topic, timeout=5)

    started = time.monotonic()
    with pytest.raises(errors.ServiceUnavailable, match=topic):
        await client.call(CTX, "echo")
    with pytest.raises(errors.ServiceUnavailable, match=topic):
        await client.cast(CTX, "echo")
    assert time.monotonic() - started < 2.0


async def test_competing_servers_share_the_work_and_each_message_is_handled_once(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    first, second = Endpoint("first"), Endpoint("second")
    await serve(first, concurrency=2)
    await serve(second, concurrency=2)
    client = RPCClient(bus, topic, timeout=10)

    results = await asyncio.gather(*(client.call(CTX, "work", n=n, delay=0.02) for n in range(20)))
    for n in range(20, 30):
        await client.cast(CTX, "work", n=n, delay=0.01)
    await wait_for(lambda: len(first.handled) + len(second.handled) == 30)
    await asyncio.sleep(0.1)

    assert [r["n"] for r in results] == list(range(20))
    assert sorted(first.handled + second.handled) == list(range(30))
    assert first.handled and second.handled
    assert {r["server"] for r in results} == {"first", "second"}


@pytest.mark.parametrize(("version", "accepted"), [
    ("1.0", True), ("1.2", True), ("1.3", False), ("2.0", False), ("0.9", False),
])
async def test_versions_above_the_served_minor_or_of_another_major_are_refused(
        bus: Transport, topic: str, serve: ServeFactory, version: str, accepted: bool) -> None:
    await serve(Endpoint())
    client = RPCClient(bus, topic, version=version, timeout=5)

    if accepted:
        assert (await client.call(CTX, "echo"))["version"] == version
        return
    with pytest.raises(VersionMismatchError) as raised:
        await client.call(CTX, "echo")
    assert version in raised.value.detail and "1.2" in raised.value.detail
    assert raised.value.extra == {"requested": version, "served": "1.2"}


async def test_server_version_argument_overrides_the_endpoint(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    await serve(Endpoint(), version="1.5")
    client = RPCClient(bus, topic, timeout=5).prepare(version="1.5")
    assert (await client.call(CTX, "echo"))["version"] == "1.5"


async def test_handlers_never_run_beyond_the_concurrency_limit(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    endpoint = Endpoint()
    await serve(endpoint, concurrency=3)
    client = RPCClient(bus, topic, timeout=10)

    await asyncio.gather(*(client.call(CTX, "work", n=n, delay=0.1) for n in range(10)))

    assert endpoint.max_active == 3
    assert sorted(endpoint.handled) == list(range(10))


async def test_graceful_stop_finishes_in_flight_handlers_then_takes_no_more(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    endpoint = Endpoint()
    server = await serve(endpoint, concurrency=2)
    client = RPCClient(bus, topic, timeout=5)

    in_flight = asyncio.create_task(client.call(CTX, "work", n=1, delay=0.3))
    await asyncio.wait_for(endpoint.started.wait(), 5)
    await server.stop(grace=5)

    assert in_flight.done()
    assert in_flight.result() == {"n": 1, "server": "server", "redelivered": False}
    assert server.in_flight == 0 and not server.running
    with pytest.raises(errors.RPCTimeout):
        await client.call(CTX, "work", n=2, timeout=0.3)
    assert endpoint.handled == [1]


async def test_a_handler_cut_off_at_stop_is_redelivered_and_marked(
        bus: Transport, topic: str, serve: ServeFactory) -> None:
    stuck, rescuer = Endpoint("stuck", hang=True), Endpoint("rescuer")
    stuck_server = await serve(stuck, concurrency=1)
    client = RPCClient(bus, topic, timeout=10)

    call = asyncio.create_task(client.call(CTX, "work", n=7))
    await asyncio.wait_for(stuck.started.wait(), 5)
    await stuck_server.stop(grace=0.1)
    await serve(rescuer)

    assert await asyncio.wait_for(call, 10) == {"n": 7, "server": "rescuer", "redelivered": True}
    assert stuck.handled == [] and rescuer.handled == [7]


async def test_undecodable_messages_are_dropped_not_redelivered(
        bus: Transport, topic: str, serve: ServeFactory, caplog: pytest.LogCaptureFixture) -> None:
    await serve(Endpoint())
    client = RPCClient(bus, topic, timeout=5)

    with caplog.at_level(logging.ERROR, logger="bayport.rpc.server"):
        await bus.send(topic, b"\x00 not an envelope", timeout=5)
        reply = await bus.request(topic, b'{"method": 42}', timeout=5)
        with pytest.raises(MalformedMessageError):
            decode_reply(reply)
        await asyncio.sleep(0.3)
        assert (await client.call(CTX, "echo"))["method"] == "echo"

    rejected = [r for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(rejected) == 2


async def test_fanout_reaches_every_subscriber(bus: Transport, topic: str) -> None:
    fanout = bus.fanout(topic)
    await fanout.publish({"lost": "nobody listens yet"})
    first, second = await fanout.subscribe(), await fanout.subscribe()
    async with first, second:
        await fanout.publish({"bay": "b1", "status": "CREATE_COMPLETE"})
        await fanout.publish({"widget": Widget(name="w")})

        for subscription in (first, second):
            assert await asyncio.wait_for(subscription.get(), 5) == {"bay": "b1", "status": "CREATE_COMPLETE"}
            payload = await asyncio.wait_for(subscription.get(), 5)
            assert isinstance(payload["widget"], Widget)
            assert payload["widget"].obj_what_changed() == {"name"}

    other = bus.fanout(f"{topic}.other")
    async with await other.subscribe() as unrelated:
        await fanout.publish({"only": "for the first topic"})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(unrelated.get(), 0.2)


async def test_fanout_iteration_ends_when_the_subscription_closes(bus: Transport, topic: str) -> None:
    fanout = bus.fanout(topic)
    subscription = await fanout.subscribe()
    await fanout.publish({"n": 1})
    received = []
    async for payload in subscription:
        received.append(payload)
        await subscription.close()
    assert received == [{"n": 1}]
    with pytest.raises(errors.ServiceUnavailable):
        await subscription.get()
