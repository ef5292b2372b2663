"""The pod-network controller (issue #4 part 3): it watches the pods of every bay on the
``bayport`` network driver, gives each pod a port from IPAM and writes it onto the pod as
Kuryr's annotations, and frees ports, namespace networks and bay networks as pods,
namespaces and bays go.

``service.PodNetworkController`` runs it for the bays a process owns (``ownership``);
``bay.BayNetwork`` is one bay's watches and handlers; ``queue.PerKeyQueue`` keeps each pod's
events in order. Conductors add it through ``install``; ``bayport netd`` runs it alone.
"""

from bayport.network.controller.bay import BayInfo, BayNetwork
from bayport.network.controller.ownership import ConductorShare, EveryBay, Ownership
from bayport.network.controller.service import PodNetworkController, controller_of, install
from bayport.objects.ownership import rendezvous_owner

__all__ = [
    "BayInfo",
    "BayNetwork",
    "ConductorShare",
    "EveryBay",
    "Ownership",
    "PodNetworkController",
    "controller_of",
    "install",
    "rendezvous_owner",
]
