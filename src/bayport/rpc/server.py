"""The serving side of the bus: dispatches requests on a topic to an endpoint's coroutines.

The conductor wraps its endpoint in an ``RPCServer``; each message is decoded
(``envelope``), checked against the endpoint's RPC API version, its arguments
rebuilt (``codec``) and passed to ``async def <method>(self, ctx, **args)``. The
message is acked only after the handler finished, then the reply goes back to a
waiting caller (``client``); a crash mid-handler means redelivery to another
server, which the handler sees through ``current_call().redelivered``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from bayport import errors
from bayport.metrics import CONDUCTOR_IN_FLIGHT, RPC_HANDLED, RPC_HANDLING
from bayport.rpc import codec
from bayport.rpc.envelope import (
    Request,
    decode_request,
    encode_error,
    encode_result,
    is_compatible,
    parse_version,
)
from bayport.rpc.errors import MalformedMessageError, UnknownMethodError, VersionMismatchError
from bayport.rpc.transport import Consumer, Delivery, Transport, check_topic

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class CallInfo:
    """What the running handler is serving; read it with :func:`current_call`."""

    topic: str
    method: str
    version: str
    request_id: str
    redelivered: bool
    expects_reply: bool


_current: ContextVar[CallInfo] = ContextVar("bayport_rpc_call")


def current_call() -> CallInfo:
    """The request the current handler serves; RuntimeError outside an RPC handler."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("current_call() is only available inside an RPC handler") from None


def is_redelivered() -> bool:
    """The message being handled was delivered before (its first server died or gave it back)."""
    info = _current.get(None)
    return info.redelivered if info is not None else False


def endpoint_methods(endpoint: object) -> dict[str, Handler]:
    """The endpoint's public ``async def`` methods: what a caller may invoke by name."""
    methods: dict[str, Handler] = {}
    for name in dir(type(endpoint)):
        if name.startswith("_"):
            continue
        if inspect.iscoroutinefunction(inspect.getattr_static(endpoint, name)):
            methods[name] = getattr(endpoint, name)
    return methods


class RPCServer:
    """One consumer of ``topic`` serving ``endpoint``; several servers on a topic share its work.

    The endpoint declares its API version as ``RPC_API_VERSION = "1.3"`` (or pass
    ``version``); callers needing a higher minor or another major are refused.
    """

    def __init__(self, transport: Transport, topic: str, endpoint: object, *, concurrency: int = 8,
                 version: str | None = None, stop_grace: float = 30.0) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.transport = transport
        self.topic = check_topic(topic)
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.version = version or str(getattr(endpoint, "RPC_API_VERSION", "1.0"))
        parse_version(self.version)
        self.stop_grace = stop_grace
        self._methods = endpoint_methods(endpoint)
        self._signatures = {name: inspect.signature(fn) for name, fn in self._methods.items()}
        self._consumer: Consumer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def running(self) -> bool:
        return self._consumer is not None

    async def start(self) -> None:
        """Declare the topic's queue and start handling messages."""
        if self._consumer is not None:
            raise RuntimeError(f"RPC server on {self.topic!r} is already running")
        self._consumer = await self.transport.consume(self.topic, self._on_delivery,
                                                      prefetch=self.concurrency)
        log.info("serving %s v%s on topic %s (concurrency %d)", type(self.endpoint).__name__,
                 self.version, self.topic, self.concurrency)

    async def stop(self, grace: float | None = None) -> None:
        """Stop consuming, let in-flight handlers finish for up to ``grace`` seconds, then close.

        Handlers still running after that are cancelled and their messages go back
        to the queue unacked, to be redelivered to another server.
        """
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        await consumer.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.stop_grace if grace is None else grace)
        while self._tasks and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)
        if self._tasks:
            log.warning("%d handler(s) on %s did not finish in time; their messages are requeued",
                        len(self._tasks), self.topic)
            unfinished = set(self._tasks)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await consumer.close()
        log.info("stopped serving topic %s", self.topic)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def _on_delivery(self, delivery: Delivery) -> None:
        if self._consumer is None:
            return  # stopping: left unacked, the consumer's close gives it back
        task = asyncio.create_task(self._handle(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, delivery: Delivery) -> None:
        try:
            request = decode_request(delivery.body)
        except MalformedMessageError as exc:
            log.error("rejecting undecodable message on %s (not requeued): %s; body starts %r",
                      self.topic, exc.detail, delivery.body[:200])
            if delivery.expects_reply:
                await self._reply(delivery, encode_error(exc))
            await self._settle(delivery.reject(requeue=False))
            return
        if delivery.redelivered:
            log.info("%s %s on %s is a redelivery", request.method, request.context.request_id, self.topic)
        token = _current.set(CallInfo(topic=self.topic, method=request.method, version=request.version,
                                      request_id=request.context.request_id,
                                      redelivered=delivery.redelivered,
                                      expects_reply=delivery.expects_reply))
        in_flight = CONDUCTOR_IN_FLIGHT.labels(request.method)
        in_flight.inc()
        started = time.perf_counter()
        try:
            reply = await self._dispatch(request)
        finally:
            _current.reset(token)
            in_flight.dec()
            RPC_HANDLING.labels(request.method).observe(time.perf_counter() - started)
        # Ack first: it is on the wire before the reply, so a caller holding its reply
        # does not see the work handed out again; a crash in between costs the caller
        # a timeout, never a second run of finished work.
        await self._settle(delivery.ack())
        if delivery.expects_reply:
            await self._reply(delivery, reply)

    async def _dispatch(self, request: Request) -> bytes:
        """Run the handler; every outcome but cancellation becomes reply bytes."""
        try:
            if not is_compatible(request.version, self.version):
                raise VersionMismatchError(
                    f"{request.method!r} needs RPC API version {request.version} but topic "
                    f"{self.topic!r} serves {self.version} (same major, minor up to {self.version})",
                    requested=request.version, served=self.version)
            handler = self._methods.get(request.method)
            if handler is None:
                raise UnknownMethodError(f"topic {self.topic!r} has no method {request.method!r}",
                                         method=request.method)
            args = codec.from_wire(request.args)
            try:
                self._signatures[request.method].bind(request.context, **args)
            except TypeError as exc:
                raise errors.InvalidInput(f"bad arguments for {request.method!r}: {exc}") from exc
            result = encode_result(await handler(request.context, **args))
            RPC_HANDLED.labels(request.method, "ok").inc()
            return result
        except errors.BayportError as exc:
            RPC_HANDLED.labels(request.method, exc.code).inc()
            # A call's caller sees the error; a cast's failure is only ever seen in this log.
            level = logging.INFO if current_call().expects_reply else logging.WARNING
            log.log(level, "%s %s failed: %s: %s", request.method, request.context.request_id, exc.code,
                    exc.detail)
            return encode_error(exc)
        except Exception as exc:
            RPC_HANDLED.labels(request.method, "unexpected").inc()
            log.exception("%s %s on %s raised an unexpected error", request.method,
                          request.context.request_id, self.topic)
            return encode_error(exc)

    async def _reply(self, delivery: Delivery, body: bytes) -> None:
        try:
            await delivery.reply(body)
        except Exception:  # the caller will time out; the message is still settled
            log.warning("could not send the reply on %s", self.topic, exc_info=True)

    async def _settle(self, outcome: Awaitable[None]) -> None:
        try:
            await outcome
        except Exception:  # connection gone: the broker redelivers the message on its own
            log.warning("could not ack/reject a message on %s; the broker will redeliver it",
                        self.topic, exc_info=True)
