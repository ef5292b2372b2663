"""What the RPC client and server need from a message broker, and how one is chosen.

``get_transport(url)`` returns the in-memory bus (``memory://``, embedded mode) or
RabbitMQ (``amqp://``, production). Both give the same guarantees to ``client`` and
``server``: a topic is a durable work queue declared by its first consumer;
competing consumers each get distinct messages, at most ``prefetch`` unacknowledged
at a time; an unacknowledged message returns to the queue, marked redelivered, when
its consumer closes or dies; publishing to a topic nobody ever consumed is refused.
Fanout (``Transport.fanout``) is plain publish/subscribe without persistence.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

from bayport import errors
from bayport.rpc import codec

_TOPIC = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def check_topic(topic: str) -> str:
    """Topic names are literal routing keys: no AMQP wildcards, no spaces."""
    if not _TOPIC.match(topic):
        raise errors.InvalidInput(f"invalid bus topic {topic!r}: use letters, digits, '.', '_', '-'",
                                  field="topic")
    return topic


class Delivery(ABC):
    """One message handed to a consumer; it must be acked or rejected exactly once."""

    body: bytes
    redelivered: bool

    @property
    @abstractmethod
    def expects_reply(self) -> bool:
        """The sender is waiting (a call), so :meth:`reply` must be used."""

    @abstractmethod
    async def reply(self, body: bytes) -> None:
        """Send the reply to the caller; silently dropped when the caller is gone."""

    @abstractmethod
    async def ack(self) -> None:
        """Done: the message leaves the queue for good."""

    @abstractmethod
    async def reject(self, *, requeue: bool) -> None:
        """Give the message back (``requeue``, marked redelivered) or drop it."""


DeliveryCallback = Callable[[Delivery], None]


class Consumer(ABC):
    """A running subscription of one server to one topic's queue."""

    @abstractmethod
    async def cancel(self) -> None:
        """Receive no more messages; those already delivered can still be acked."""

    @abstractmethod
    async def close(self) -> None:
        """Cancel, then give every unacknowledged message back to the queue (redelivered)."""


class Subscription:
    """Payloads of one fanout topic published after the subscription was made.

    The transport puts raw bodies into ``inbox``; ``None`` there means closed.
    """

    def __init__(self, topic: str, inbox: asyncio.Queue[bytes | None],
                 closer: Callable[[], Awaitable[None]]) -> None:
        self.topic = topic
        self._inbox = inbox
        self._closer = closer
        self._closed = False

    async def get(self) -> dict[str, Any]:
        """The next payload (objects rebuilt); waits until one arrives.

        Raises ServiceUnavailable once the subscription is closed.
        """
        body = await self._inbox.get()
        if body is None:
            self._inbox.put_nowait(None)
            raise errors.ServiceUnavailable(f"fanout subscription to {self.topic!r} is closed")
        value = codec.from_wire(codec.loads(body))
        if not isinstance(value, dict):
            raise errors.InvalidInput(f"fanout payload on {self.topic!r} is not an object")
        return value

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._inbox.put_nowait(None)
            await self._closer()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            try:
                yield await self.get()
            except errors.ServiceUnavailable:
                if self._closed:
                    return
                raise

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class Fanout(ABC):
    """Broadcast on one topic: every current subscriber gets every payload; nothing is stored."""

    def __init__(self, topic: str) -> None:
        self.topic = check_topic(topic)

    async def publish(self, payload: Mapping[str, Any]) -> None:
        """Send ``payload`` (a JSON object; BayportObjects allowed) to every subscriber."""
        await self._publish(codec.dumps(codec.to_wire(dict(payload))))

    @abstractmethod
    async def _publish(self, body: bytes) -> None: ...

    @abstractmethod
    async def subscribe(self) -> Subscription:
        """Start receiving; payloads published after this returns are delivered."""


class Transport(ABC):
    """A connection to a broker, shared by every client, server and fanout of a process."""

    def __init__(self, url: str) -> None:
        self.url = url

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection now; otherwise the first use does. Unreachable → ServiceUnavailable."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def send(self, topic: str, body: bytes, *, timeout: float) -> None:
        """Enqueue a one-way message; returns once the broker has taken it (publisher confirm).

        Waits up to ``timeout`` seconds for that (across a reconnection), then
        raises ServiceUnavailable.
        """

    @abstractmethod
    async def request(self, topic: str, body: bytes, *, timeout: float) -> bytes:
        """Enqueue a message that expects a reply and return the reply's body.

        Raises ``TimeoutError`` when no reply came within ``timeout`` seconds (the
        request itself expires from the queue after that long, so a late server
        does not work for a caller who gave up).
        """

    @abstractmethod
    async def consume(self, topic: str, callback: DeliveryCallback, *, prefetch: int) -> Consumer:
        """Declare ``topic``'s durable queue and deliver its messages to ``callback``.

        ``callback`` is called synchronously once per message and must return at
        once (hand the work to a task); at most ``prefetch`` messages are delivered
        and not yet acked or rejected.
        """

    @abstractmethod
    async def delete_topic(self, topic: str) -> None:
        """Remove ``topic``'s queue and whatever is in it (tests, decommissioning)."""

    @abstractmethod
    def fanout(self, topic: str) -> Fanout: ...

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


def get_transport(url: str) -> Transport:
    """The transport for ``url``: ``memory://`` or ``amqp://user:pass@host:port/vhost``."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        from bayport.rpc.memory import MemoryTransport

        return MemoryTransport(url)
    if scheme in {"amqp", "amqps"}:
        from bayport.rpc.amqp import AmqpTransport

        return AmqpTransport(url)
    raise errors.InvalidInput(f"unsupported transport URL scheme {scheme!r} (use memory:// or amqp://)",
                              field="transport_url")
