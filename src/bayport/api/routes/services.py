"""/v1/services: Kubernetes services in a bay (``coe-service-*`` on the command line).

The routes come from ``workloads.build_router``; the row shows the ``selector``, the ``ports``
and ``ip``, the ClusterIP the bay assigned.
"""

from bayport.api.routes.workloads import build_router
from bayport.kube.kinds import SERVICE

router = build_router(SERVICE)
