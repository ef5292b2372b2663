"""The pod annotations that carry a port from the controller to the node side.

The controller writes them (values built by ``ipam.pod_annotations``); the CNI plugin
and the embedded cluster's node agents read them. Names as in Kuryr (reference 003).
"""

from __future__ import annotations

NEUTRON_PORT = "kuryr.org/neutron-port"
NEUTRON_SUBNET = "kuryr.org/neutron-subnet"
PORT_ID = "bayport.io/port-id"
