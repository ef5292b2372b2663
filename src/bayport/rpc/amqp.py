"""RabbitMQ transport (``amqp://user:pass@host:port/vhost``) for production, via aio-pika.

Layout on the broker: a durable topic exchange ``bayport``; per server role a
durable queue ``bayport.<topic>`` bound with routing key ``<topic>``; persistent
messages sent with publisher confirms and ``mandatory`` (unroutable → the caller
gets ServiceUnavailable at once); servers consume with manual ack and
``basic.qos(prefetch)``, so a killed server's unacked messages go to another one.

Replies come back through one exclusive, auto-delete queue per transport
(``bayport.reply.<uuid>``) matched by correlation id. Not direct reply-to
(``amq.rabbitmq.reply-to``): that pseudo-queue belongs to the channel that
published, so after ``connect_robust`` reconnects (broker restart) a conductor's
reply to a call made before the restart has nowhere to go; a named queue is
redeclared under the same name and the reply still arrives within the timeout.
The cost is one queue declaration per process. Broadcast uses a second durable
topic exchange, ``bayport.fanout``, with one server-named exclusive queue per
subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError, PublishError
from yarl import URL

from bayport import errors
from bayport.rpc.transport import (
    Consumer,
    Delivery,
    DeliveryCallback,
    Fanout,
    Subscription,
    Transport,
    check_topic,
)

log = logging.getLogger(__name__)

EXCHANGE = "bayport"
FANOUT_EXCHANGE = "bayport.fanout"
# Long enough for a loaded broker, short enough that a wrong URL fails a command promptly.
CONNECT_TIMEOUT = 10.0
# aio-pika waits 5 s between reconnection attempts; a conductor without its broker
# is idle, so try every second (``?reconnect_interval=`` in the URL overrides this).
RECONNECT_INTERVAL = 1.0
# While the connection is down a robust channel waits for it to come back; these
# bound how long a reply, or a consumer cancel during stop, may wait for that.
REPLY_TIMEOUT = 10.0
BROKER_OP_TIMEOUT = 5.0
# Pause between publish attempts while connect_robust is reconnecting.
PUBLISH_RETRY_PAUSE = 0.1

_BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError)


def queue_name(topic: str) -> str:
    return f"{EXCHANGE}.{topic}"


def _safe_url(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


class _AmqpDelivery(Delivery):
    def __init__(self, transport: AmqpTransport, message: AbstractIncomingMessage) -> None:
        self._transport = transport
        self._message = message
        self.body = message.body
        self.redelivered = bool(message.redelivered)

    @property
    def expects_reply(self) -> bool:
        return bool(self._message.reply_to and self._message.correlation_id)

    async def reply(self, body: bytes) -> None:
        if self._message.reply_to and self._message.correlation_id:
            await self._transport.publish_reply(self._message.reply_to, self._message.correlation_id, body)

    async def ack(self) -> None:
        await self._message.ack()

    async def reject(self, *, requeue: bool) -> None:
        await self._message.reject(requeue=requeue)


class _AmqpConsumer(Consumer):
    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, tag: ConsumerTag) -> None:
        self._channel = channel
        self._queue = queue
        self._tag: ConsumerTag | None = tag

    async def cancel(self) -> None:
        if self._tag is None:
            return
        tag, self._tag = self._tag, None
        try:
            # The robust queue forgets the consumer first, so it is not restored even if this fails.
            await asyncio.wait_for(self._queue.cancel(tag), BROKER_OP_TIMEOUT)
        except (*_BROKER_ERRORS, TimeoutError) as exc:
            log.warning("could not cancel consumer of %s (connection lost?): %r", self._queue.name, exc)

    async def close(self) -> None:
        await self.cancel()
        try:
            # Closing the channel hands every unacked message back to the broker.
            await asyncio.wait_for(self._channel.close(), BROKER_OP_TIMEOUT)
        except (*_BROKER_ERRORS, TimeoutError) as exc:
            log.warning("could not close the channel of %s (connection lost?): %r", self._queue.name, exc)


class _AmqpFanout(Fanout):
    def __init__(self, transport: AmqpTransport, topic: str) -> None:
        super().__init__(topic)
        self._transport = transport

    async def _publish(self, body: bytes) -> None:
        await self._transport.publish_fanout(self.topic, body)

    async def subscribe(self) -> Subscription:
        channel = await self._transport.open_channel()
        try:
            exchange = await channel.declare_exchange(FANOUT_EXCHANGE, aio_pika.ExchangeType.TOPIC,
                                                      durable=True)
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            await queue.bind(exchange, routing_key=self.topic)
            inbox: asyncio.Queue[bytes | None] = asyncio.Queue()

            async def on_message(message: AbstractIncomingMessage) -> None:
                inbox.put_nowait(message.body)

            await queue.consume(on_message, no_ack=True)
        except _BROKER_ERRORS as exc:
            await channel.close()
            raise errors.ServiceUnavailable(f"cannot subscribe to fanout {self.topic!r}: {exc}") from exc

        async def closer() -> None:
            if not channel.is_closed:
                await channel.close()

        return Subscription(self.topic, inbox, closer)


class AmqpTransport(Transport):
    """One robust connection to RabbitMQ shared by the process's clients, servers and fanouts."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._lock = asyncio.Lock()
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._fanout_exchange: AbstractExchange | None = None
        self._reply_queue_name = f"{EXCHANGE}.reply.{uuid.uuid4().hex}"
        self._reply_channel: AbstractChannel | None = None
        self._pending: dict[str, asyncio.Future[bytes]] = {}

    def __repr__(self) -> str:
        return f"AmqpTransport({_safe_url(self.url)!r})"

    async def connect(self) -> None:
        async with self._lock:
            if self._connection is not None:
                return
            try:
                options: dict[str, Any] = {}
                if "reconnect_interval" not in URL(self.url).query:
                    options["reconnect_interval"] = RECONNECT_INTERVAL
                connection = await aio_pika.connect_robust(
                    self.url, timeout=CONNECT_TIMEOUT,
                    client_properties={"connection_name": f"bayport pid {os.getpid()}"}, **options)
            except (*_BROKER_ERRORS, OSError, TimeoutError) as exc:
                raise errors.ServiceUnavailable(
                    f"cannot reach RabbitMQ at {_safe_url(self.url)}: {exc or type(exc).__name__}") from exc
            try:
                # on_return_raises: a mandatory message no queue takes fails its publish call.
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                self._exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC,
                                                                durable=True)
                self._fanout_exchange = await channel.declare_exchange(
                    FANOUT_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
            except BaseException:
                await connection.close()
                raise
            self._connection, self._publish_channel = connection, channel

    async def _ready(self) -> tuple[AbstractRobustConnection, AbstractChannel]:
        if self._connection is None:
            await self.connect()
        assert self._connection is not None and self._publish_channel is not None
        return self._connection, self._publish_channel

    async def open_channel(self) -> AbstractChannel:
        connection, _ = await self._ready()
        try:
            return await connection.channel(publisher_confirms=False)
        except _BROKER_ERRORS as exc:
            raise errors.ServiceUnavailable(f"cannot open a RabbitMQ channel: {exc}") from exc

    async def _publish(self, exchange: AbstractExchange | None, routing_key: str,
                       message: aio_pika.Message, *, mandatory: bool, timeout: float) -> None:
        """Publish and wait for the broker's confirm, retrying across a reconnection until ``timeout``.

        A retry after a lost confirm can enqueue the message twice; handlers are
        idempotent (STYLE.md 6), so at-least-once is the promise.
        """
        assert exchange is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await exchange.publish(message, routing_key=routing_key, mandatory=mandatory)
                        return
                    except PublishError as exc:
                        raise errors.ServiceUnavailable(
                            f"no server has ever listened on topic {routing_key!r}; "
                            "the message has nowhere to go") from exc
                    except DeliveryError as exc:
                        raise errors.ServiceUnavailable(
                            f"RabbitMQ refused the message for {routing_key!r}") from exc
                    except _BROKER_ERRORS as exc:
                        log.info("publishing to %s failed (%r); retrying once reconnected", routing_key, exc)
                        await asyncio.sleep(PUBLISH_RETRY_PAUSE)
        except TimeoutError as exc:
            raise errors.ServiceUnavailable(
                f"RabbitMQ at {_safe_url(self.url)} did not accept the message for {routing_key!r} "
                f"within {timeout:g} s") from exc

    async def send(self, topic: str, body: bytes, *, timeout: float) -> None:
        await self._ready()
        message = aio_pika.Message(body, content_type="application/json",
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await self._publish(self._exchange, check_topic(topic), message, mandatory=True, timeout=timeout)

    async def request(self, topic: str, body: bytes, *, timeout: float) -> bytes:
        check_topic(topic)
        await self._ensure_reply_queue()
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        message = aio_pika.Message(body, content_type="application/json",
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                   reply_to=self._reply_queue_name, correlation_id=correlation_id,
                                   expiration=timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self._publish(self._exchange, topic, message, mandatory=True, timeout=timeout)
            return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        finally:
            self._pending.pop(correlation_id, None)

    async def _ensure_reply_queue(self) -> None:
        connection, _ = await self._ready()
        if self._reply_channel is not None:
            return
        async with self._lock:
            if self._reply_channel is not None:
                return
            try:
                channel = await connection.channel(publisher_confirms=False)
                queue = await channel.declare_queue(self._reply_queue_name, exclusive=True, auto_delete=True)
                await queue.consume(self._on_reply, no_ack=True)
            except _BROKER_ERRORS as exc:
                raise errors.ServiceUnavailable(f"cannot set up the RPC reply queue: {exc}") from exc
            self._reply_channel = channel

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is not None and not future.done():
            future.set_result(message.body)

    async def publish_reply(self, reply_to: str, correlation_id: str, body: bytes) -> None:
        _, channel = await self._ready()
        message = aio_pika.Message(body, content_type="application/json", correlation_id=correlation_id)
        # Not mandatory: a caller that gave up has no reply queue any more, and that is fine.
        await self._publish(channel.default_exchange, reply_to, message, mandatory=False,
                            timeout=REPLY_TIMEOUT)

    async def publish_fanout(self, topic: str, body: bytes) -> None:
        await self._ready()
        message = aio_pika.Message(body, content_type="application/json",
                                   delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT)
        await self._publish(self._fanout_exchange, topic, message, mandatory=False,
                            timeout=BROKER_OP_TIMEOUT)

    async def consume(self, topic: str, callback: DeliveryCallback, *, prefetch: int) -> Consumer:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        check_topic(topic)
        channel = await self.open_channel()
        try:
            await channel.set_qos(prefetch_count=prefetch)
            exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
            queue = await channel.declare_queue(queue_name(topic), durable=True)
            await queue.bind(exchange, routing_key=topic)

            async def on_message(message: AbstractIncomingMessage) -> None:
                callback(_AmqpDelivery(self, message))

            tag = await queue.consume(on_message, no_ack=False)
        except _BROKER_ERRORS as exc:
            await channel.close()
            raise errors.ServiceUnavailable(f"cannot consume topic {topic!r}: {exc}") from exc
        return _AmqpConsumer(channel, queue, tag)

    async def delete_topic(self, topic: str) -> None:
        channel = await self.open_channel()
        try:
            await channel.queue_delete(queue_name(check_topic(topic)))
        finally:
            await channel.close()

    def fanout(self, topic: str) -> Fanout:
        return _AmqpFanout(self, topic)

    async def close(self) -> None:
        async with self._lock:
            connection, self._connection = self._connection, None
            self._publish_channel = self._reply_channel = None
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(errors.ServiceUnavailable("the RabbitMQ transport was closed"))
            if connection is not None:
                await connection.close()
