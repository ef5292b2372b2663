"""Who is asking: the identity a bearer token stands for, and the identity of the request at hand.

``http.access`` maps each of a cluster's tokens to an ``Identity`` and sets ``CURRENT`` for the
length of one request; checks that run deep inside the store (``pod_network_admission``) read it
there instead of having the caller thread it through every write. In-process callers
(controllers, node agents) run outside any request: ``CURRENT`` is None for them, and they are
trusted as the cluster itself.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

ADMIN_USER = "bayport:admin"                       # the token Bayport's conductor and admins use
READER_USER = "bayport:reader"                     # the read-only token project readers get
NETWORK_USER = "bayport:network-controller"        # the pod-network controller's own token


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ("system:authenticated",)
    read_only: bool = False        # get/list/watch only (the "view" role)
    pod_network: bool = False      # may set the pod-network annotations (kuryr.org/*)


ADMIN = Identity(ADMIN_USER, ("system:masters", "system:authenticated"))
READER = Identity(READER_USER, read_only=True)
NETWORK = Identity(NETWORK_USER, pod_network=True)

CURRENT: ContextVar[Identity | None] = ContextVar("bayport_cluster_identity", default=None)
