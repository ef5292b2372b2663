"""/v1/rcs: replication controllers in a bay; PATCH ``/replicas`` scales one.

The routes come from ``workloads.build_router``; the row shows ``selector``, ``images``, the
desired ``replicas`` and ``ready_replicas`` as the bay's watch last saw them.
"""

from bayport.api.routes.workloads import build_router
from bayport.kube.kinds import RC

router = build_router(RC)
