"""The calling side of the bus, used by the API (and by anyone handing work to a conductor).

``call`` sends the envelope and waits for the reply: the result comes back with
objects rebuilt, a handler's BayportError is re-raised here as the same class
with the same detail, and silence turns into ``errors.RPCTimeout``. ``cast`` only
waits for the broker to accept the message; the work then happens in ``server``. Both are counted and
timed by method (``bayport.metrics``).
"""

from __future__ import annotations

import time
from typing import Any

from bayport import errors
from bayport.config import get_settings
from bayport.metrics import RPC_DURATION, RPC_REQUESTS
from bayport.objects.context import RequestContext
from bayport.rpc.envelope import decode_reply, encode_request, parse_version
from bayport.rpc.transport import Transport, check_topic


class RPCClient:
    """Sends requests for one topic (server role) at one RPC API version."""

    def __init__(self, transport: Transport, topic: str, *, version: str = "1.0",
                 timeout: float | None = None) -> None:
        parse_version(version)
        self.transport = transport
        self.topic = check_topic(topic)
        self.version = version
        self.timeout = timeout if timeout is not None else get_settings().rpc_timeout

    def prepare(self, *, version: str | None = None, timeout: float | None = None) -> RPCClient:
        """A client for the same topic that asks for another version or waits another time."""
        return RPCClient(self.transport, self.topic, version=version or self.version,
                         timeout=timeout if timeout is not None else self.timeout)

    async def call(self, ctx: RequestContext, method: str, /, timeout: float | None = None,
                   **args: Any) -> Any:
        """Run ``method`` on one server of the topic and return its result.

        Raises the handler's BayportError, ``RPCTimeout`` after ``timeout`` seconds
        (default: the client's), or ``ServiceUnavailable`` when the broker cannot
        be reached or no server ever listened on the topic.
        """
        seconds = timeout if timeout is not None else self.timeout
        body = encode_request(ctx, method, self.version, args)
        started = time.perf_counter()
        outcome = "error"
        try:
            reply = await self.transport.request(self.topic, body, timeout=seconds)
            result = decode_reply(reply)
            outcome = "ok"
            return result
        except TimeoutError:
            outcome = "timeout"
            raise errors.RPCTimeout(
                f"no reply to {method!r} on topic {self.topic!r} within {seconds:g} s",
                method=method, topic=self.topic, timeout=seconds) from None
        finally:
            RPC_REQUESTS.labels(method, "call", outcome).inc()
            RPC_DURATION.labels(method, "call").observe(time.perf_counter() - started)

    async def cast(self, ctx: RequestContext, method: str, /, **args: Any) -> None:
        """Hand ``method`` to one server of the topic; returns once the broker confirmed it.

        Raises ``ServiceUnavailable`` when the broker did not confirm within the
        client's timeout or no server ever listened on the topic.
        """
        started = time.perf_counter()
        outcome = "error"
        try:
            await self.transport.send(self.topic, encode_request(ctx, method, self.version, args),
                                      timeout=self.timeout)
            outcome = "ok"
        finally:
            RPC_REQUESTS.labels(method, "cast", outcome).inc()
            RPC_DURATION.labels(method, "cast").observe(time.perf_counter() - started)
