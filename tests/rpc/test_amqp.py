"""RabbitMQ-only behaviour: a conductor killed mid-handler, broker layout, unreachable broker."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from bayport import errors
from bayport.objects.context import RequestContext
from bayport.rpc import RPCClient, RPCServer, Transport, get_transport
from bayport.rpc.amqp import EXCHANGE, queue_name
from tests.conftest import require
from tests.rpc.conftest import AMQP_URL, Endpoint, rabbitmq_reachable

# A conductor that takes the job, says so, and never finishes it.
DOOMED_SERVER = """
import asyncio, sys
from bayport.rpc import RPCServer, get_transport

class Endpoint:
    async def work(self, ctx, n, delay=0.0):
        print("STARTED", n, flush=True)
        await asyncio.sleep(3600)
        print("FINISHED", n, flush=True)
        return {"n": n, "server": "doomed", "redelivered": False}

async def main(url, topic):
    async with get_transport(url) as transport:
        await RPCServer(transport, topic, Endpoint(), concurrency=1).start()
        print("READY", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""

@pytest.fixture
async def amqp() -> AsyncIterator[Transport]:
    require(rabbitmq_reachable(), f"RabbitMQ not reachable at {AMQP_URL}")
    transport = get_transport(AMQP_URL)
    await transport.connect()
    yield transport
    await transport.close()


@pytest.fixture
async def amqp_topic(amqp: Transport) -> AsyncIterator[str]:
    name = f"test.rpc.{uuid.uuid4().hex[:12]}"
    yield name
    await amqp.delete_topic(name)


async def read_line(stream: asyncio.StreamReader, expected: str) -> str:
    line = (await asyncio.wait_for(stream.readline(), 20)).decode().strip()
    assert line.startswith(expected), f"server subprocess said {line!r}, expected {expected!r}"
    return line


@pytest.mark.rabbitmq
async def test_a_killed_servers_message_is_redelivered_and_handled_once(
        amqp: Transport, amqp_topic: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DOOMED_SERVER, AMQP_URL, amqp_topic,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert process.stdout is not None
    try:
        await read_line(process.stdout, "READY")
        client = RPCClient(amqp, amqp_topic, timeout=30)
        call = asyncio.create_task(client.call(RequestContext(), "work", n=42))
        await read_line(process.stdout, "STARTED 42")
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
        rest = await process.stdout.read()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert b"FINISHED" not in rest

    survivor = Endpoint("survivor")
    server = RPCServer(amqp, amqp_topic, survivor, concurrency=4)
    await server.start()
    try:
        assert await asyncio.wait_for(call, 20) == {"n": 42, "server": "survivor", "redelivered": True}
        await asyncio.sleep(0.3)
        assert survivor.handled == [42]
    finally:
        await server.stop(grace=1)


@pytest.mark.rabbitmq
async def test_the_topic_queue_is_durable_and_bound_to_the_bayport_exchange(
        amqp: Transport, amqp_topic: str) -> None:
    server = RPCServer(amqp, amqp_topic, Endpoint())
    await server.start()
    await server.stop()

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        # Redeclaring with the same properties succeeds only if they match (else PRECONDITION_FAILED).
        queue = await channel.declare_queue(queue_name(amqp_topic), durable=True)
        await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        await RPCClient(amqp, amqp_topic).cast(RequestContext(), "work", n=1)
        message = await queue.get(timeout=5)
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await message.ack()


async def test_an_unreachable_broker_is_service_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = get_transport(f"amqp://guest:secret@127.0.0.1:{port}/")

    with pytest.raises(errors.ServiceUnavailable) as raised:
        await RPCClient(transport, "conductor", timeout=1).call(RequestContext(), "anything")
    assert f"127.0.0.1:{port}" in raised.value.detail
    assert "secret" not in raised.value.detail
    await transport.close()
