"""The in-memory bus of embedded mode (``memory://``): asyncio queues in one process.

It keeps the broker's rules that ``client`` and ``server`` rely on, so code tested
here behaves the same on RabbitMQ (``amqp``): a topic's queue exists from its first
consumer on and outlives it; consumers compete; ``prefetch`` bounds unacked
messages; closing a consumer requeues what it had not acked, marked redelivered;
calls expire from the queue after their timeout. Nothing survives the process.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, replace

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


@dataclass(frozen=True)
class _Message:
    body: bytes
    correlation_id: str | None = None
    expires_at: float | None = None
    redelivered: bool = False


class _MemoryDelivery(Delivery):
    def __init__(self, consumer: _MemoryConsumer, message: _Message) -> None:
        self._consumer = consumer
        self._message = message
        self.body = message.body
        self.redelivered = message.redelivered

    @property
    def expects_reply(self) -> bool:
        return self._message.correlation_id is not None

    async def reply(self, body: bytes) -> None:
        if self._message.correlation_id is not None:
            self._consumer.transport.deliver_reply(self._message.correlation_id, body)

    async def ack(self) -> None:
        self._consumer.settle(self, requeue=False)

    async def reject(self, *, requeue: bool) -> None:
        self._consumer.settle(self, requeue=requeue)

    def requeued(self) -> _Message:
        return replace(self._message, redelivered=True)


class _MemoryConsumer(Consumer):
    def __init__(self, transport: MemoryTransport, topic: str, queue: asyncio.Queue[_Message],
                 callback: DeliveryCallback, prefetch: int) -> None:
        self.transport = transport
        self.topic = topic
        self._queue = queue
        self._callback = callback
        self._slots = asyncio.Semaphore(prefetch)
        self._unacked: set[_MemoryDelivery] = set()
        self._task: asyncio.Task[None] | None = asyncio.create_task(self._run(), name=f"consume:{topic}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            message = await self._queue.get()
            if message.expires_at is not None and loop.time() > message.expires_at:
                self._slots.release()
                continue
            delivery = _MemoryDelivery(self, message)
            self._unacked.add(delivery)
            try:
                self._callback(delivery)
            except Exception:  # a broken callback must not lose the message or stop the loop
                log.exception("consumer callback on %s failed; message requeued", self.topic)
                self.settle(delivery, requeue=True)

    def settle(self, delivery: _MemoryDelivery, *, requeue: bool) -> None:
        """Ack (``requeue=False``) or give back; a delivery already settled or requeued is ignored."""
        if delivery not in self._unacked:
            return
        self._unacked.discard(delivery)
        self._slots.release()
        if requeue:
            self._queue.put_nowait(delivery.requeued())

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def close(self) -> None:
        await self.cancel()
        for delivery in list(self._unacked):
            self.settle(delivery, requeue=True)
        self.transport.forget(self)


class _MemoryFanout(Fanout):
    def __init__(self, transport: MemoryTransport, topic: str) -> None:
        super().__init__(topic)
        self._transport = transport

    async def _publish(self, body: bytes) -> None:
        for inbox in list(self._transport.subscribers.get(self.topic, ())):
            inbox.put_nowait(body)

    async def subscribe(self) -> Subscription:
        inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._transport.subscribers.setdefault(self.topic, set()).add(inbox)

        async def closer() -> None:
            self._transport.subscribers.get(self.topic, set()).discard(inbox)

        return Subscription(self.topic, inbox, closer)


class MemoryTransport(Transport):
    """The bus inside one process; every client and server of the process shares one instance."""

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        self._queues: dict[str, asyncio.Queue[_Message]] = {}
        self._consumers: set[_MemoryConsumer] = set()
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self.subscribers: dict[str, set[asyncio.Queue[bytes | None]]] = {}
        self._closed = False

    async def connect(self) -> None:
        if self._closed:
            raise errors.ServiceUnavailable("the in-memory bus is closed")

    def _declared(self, topic: str) -> asyncio.Queue[_Message]:
        if self._closed:
            raise errors.ServiceUnavailable("the in-memory bus is closed")
        queue = self._queues.get(check_topic(topic))
        if queue is None:
            raise errors.ServiceUnavailable(
                f"no server has ever listened on topic {topic!r}; the message has nowhere to go")
        return queue

    async def send(self, topic: str, body: bytes, *, timeout: float) -> None:
        self._declared(topic).put_nowait(_Message(body))

    async def request(self, topic: str, body: bytes, *, timeout: float) -> bytes:
        queue = self._declared(topic)
        loop = asyncio.get_running_loop()
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = loop.create_future()
        self._pending[correlation_id] = future
        try:
            queue.put_nowait(_Message(body, correlation_id, loop.time() + timeout))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(correlation_id, None)

    def deliver_reply(self, correlation_id: str, body: bytes) -> None:
        future = self._pending.get(correlation_id)
        if future is not None and not future.done():
            future.set_result(body)

    async def consume(self, topic: str, callback: DeliveryCallback, *, prefetch: int) -> Consumer:
        if self._closed:
            raise errors.ServiceUnavailable("the in-memory bus is closed")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        queue = self._queues.setdefault(check_topic(topic), asyncio.Queue())
        consumer = _MemoryConsumer(self, topic, queue, callback, prefetch)
        self._consumers.add(consumer)
        return consumer

    def forget(self, consumer: _MemoryConsumer) -> None:
        self._consumers.discard(consumer)

    async def delete_topic(self, topic: str) -> None:
        for consumer in [c for c in self._consumers if c.topic == topic]:
            await consumer.cancel()
            self.forget(consumer)
        self._queues.pop(topic, None)

    def fanout(self, topic: str) -> Fanout:
        return _MemoryFanout(self, topic)

    async def close(self) -> None:
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(errors.ServiceUnavailable("the in-memory bus was closed"))
        for inboxes in self.subscribers.values():
            for inbox in inboxes:
                inbox.put_nowait(None)
        self.subscribers.clear()

