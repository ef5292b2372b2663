"""IPAM's domain errors. They derive from ``bayport.errors`` classes, so the API maps
them to 409 responses and the RPC layer carries them by ``code`` like any other.
"""

from __future__ import annotations

from bayport import errors


class SubnetExhausted(errors.Conflict):
    """Every address of the subnet's pools is allocated (or leased to another live allocator)."""

    code = "SubnetExhausted"
    title = "No free address left in the subnet"


class PodPoolExhausted(errors.Conflict):
    """The bay's pod pool has no room for another namespace subnet."""

    code = "PodPoolExhausted"
    title = "No free subnet left in the bay's pod address pool"


class NetworkInUse(errors.Conflict):
    """A namespace network still has ports; it is released only once its pods are gone."""

    code = "NetworkInUse"
    title = "The network still has ports"
