"""What a cluster is asked to be: the ClusterSpec the host, the controllers and the API share.

Kept apart from ``host`` so that ``controllers`` can import it without importing the host (which
imports the controllers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ClusterSpec:
    name: str                                # bay name (informational)
    uid: str                                 # bay uuid
    token: str                               # bearer token accepted by the HTTP API (full admin)
    reader_token: str | None = None          # get/list/watch only (what project readers receive)
    network_token: str | None = None         # the pod-network controller's: may set kuryr.org/*
    master_count: int = 1
    node_count: int = 1
    node_cidr: str = "10.0.0.0/24"           # node i gets address .(i+10): masters first, then nodes
    pod_cidr: str = "10.100.0.0/16"          # node k gets pod CIDR /24 number k
    service_cidr: str = "10.254.0.0/16"
    runtime: str = "simulated"
    data_dir: Path | None = None             # where PVC directories live (data_dir/pv/<ns>/<claim>)
    # Whose host resources this cluster's runtime makes (runtime.ownership): the server's data dir
    # (not the bay's ``data_dir`` inside it) and its stable owner id.
    owner_id: str | None = None
    owner_dir: Path | None = None
    wait_for_port_annotation: bool = False   # network_driver "bayport": node agents wait for the
    port_wait_seconds: float = 30.0          # kuryr.org/neutron-port annotation
    labels: dict[str, str] = field(default_factory=dict)
    version: str = "v1.31.0"                 # gitVersion reported by /version
    store_sync: str = "normal"               # journal durability (cluster.journal): normal | full
    # PostgreSQL conninfo for the journal (cluster.journal_pg) instead of a SQLite file under
    # data_dir: production, where another conductor may re-host the bay with all its objects.
    store_url: str | None = None
    # Pod Security Standards level every pod is admitted at (cluster.pod_security). The operator's
    # call, like the host-path label: the local driver never takes it from user-supplied labels.
    pod_security: str = "baseline"
