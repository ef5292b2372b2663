"""/v1/pods: pods in a bay, created from a manifest (reference 000's ``pod-create``).

The routes come from ``workloads.build_router``; the row shows ``images``, the node it runs on
(``host``) and ``pod_ip``, and its status is the pod's phase as the bay's watch last saw it.
"""

from bayport.api.routes.workloads import build_router
from bayport.kube.kinds import POD

router = build_router(POD)
