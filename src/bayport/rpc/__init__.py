"""The message bus between the API and the conductors (DESIGN.md, "RPC envelope").

``RPCClient.call``/``cast`` (client) → ``Transport`` (memory or amqp) →
``RPCServer`` (server) → ``async def <method>(self, ctx, **args)`` on the
conductor's endpoint. Envelopes and replies are JSON; BayportObjects travel as
versioned primitives with their changes; errors come back as the same
BayportError class. ``Transport.fanout`` broadcasts notifications to every
subscriber (e.g. API workers).
"""

from bayport.rpc.client import RPCClient
from bayport.rpc.errors import (
    MalformedMessageError,
    RemoteError,
    UnknownMethodError,
    VersionMismatchError,
)
from bayport.rpc.server import CallInfo, RPCServer, current_call, is_redelivered
from bayport.rpc.transport import Fanout, Subscription, Transport, get_transport

__all__ = [
    "CallInfo",
    "Fanout",
    "MalformedMessageError",
    "RPCClient",
    "RPCServer",
    "RemoteError",
    "Subscription",
    "Transport",
    "UnknownMethodError",
    "VersionMismatchError",
    "current_call",
    "get_transport",
    "is_redelivered",
]
