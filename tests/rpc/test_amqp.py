"""RabbitMQ-only behaviour: a conductor killed mid-handler, broker layout, unreachable broker."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import aio_pika
import pytest
from yarl import URL

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


class WireCutter:
    """A TCP proxy to the broker whose open connections the test can cut (a network failure)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    def cut(self) -> int:
        """Abort every connection through the proxy; new ones are still accepted."""
        cut = len(self._writers)
        for writer in list(self._writers):
            writer.transport.abort()
        return cut

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def cutter() -> AsyncIterator[WireCutter]:
    require(rabbitmq_reachable(), f"RabbitMQ not reachable at {AMQP_URL}")
    parsed = URL(AMQP_URL)
    proxy = WireCutter(parsed.host or "127.0.0.1", parsed.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.close()


def via(proxy: WireCutter) -> str:
    return str(URL(AMQP_URL).with_port(proxy.port).update_query(reconnect_interval="0.2"))


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


@pytest.mark.rabbitmq
async def test_server_and_client_survive_a_dropped_connection(
        amqp: Transport, amqp_topic: str, cutter: WireCutter) -> None:
    server_bus, client_bus = get_transport(via(cutter)), get_transport(via(cutter))
    endpoint = Endpoint()
    server = RPCServer(server_bus, amqp_topic, endpoint)
    try:
        await server.start()
        client = RPCClient(client_bus, amqp_topic, timeout=10)
        assert (await client.call(RequestContext(), "work", n=1))["n"] == 1
        await asyncio.sleep(0.1)  # the broker has settled message 1 before the wire is cut

        assert cutter.cut() >= 4
        assert (await client.call(RequestContext(), "work", n=2))["n"] == 2
        await RPCClient(amqp, amqp_topic).cast(RequestContext(), "work", n=3)
        await asyncio.wait_for(_until(lambda: 3 in endpoint.handled), 10)
        assert endpoint.handled == [1, 2, 3]
    finally:
        await server.stop(grace=1)
        await server_bus.close()
        await client_bus.close()


@pytest.mark.rabbitmq
async def test_a_reply_reaches_a_caller_whose_connection_dropped_mid_call(
        amqp: Transport, amqp_topic: str, cutter: WireCutter) -> None:
    endpoint = Endpoint()
    server = RPCServer(amqp, amqp_topic, endpoint)
    client_bus = get_transport(via(cutter))
    try:
        await server.start()
        client = RPCClient(client_bus, amqp_topic, timeout=15)
        call = asyncio.create_task(client.call(RequestContext(), "work", n=5, delay=1.5))
        await asyncio.wait_for(endpoint.started.wait(), 5)

        assert cutter.cut() >= 2

        assert await asyncio.wait_for(call, 15) == {"n": 5, "server": "server", "redelivered": False}
    finally:
        await server.stop(grace=1)
        await client_bus.close()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.02)
