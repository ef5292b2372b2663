"""``bayport-cni``: the CNI 1.0.0 plugin that binds a pod to the port the network
controller annotated on it (DESIGN.md, Network step 2; reference 003, step 4).

The runtime executes it with CNI_* variables and the network configuration on stdin;
``main`` only moves bytes: the logic is in ``commands`` (importable, tested). One
process per pod: keep its imports to the stdlib (``rtnl``, ``clusterapi`` say why).
"""

from __future__ import annotations

import json
import os
import sys

from bayport.network.cni.commands import execute, run


def main() -> None:
    stdin = sys.stdin.buffer.read()
    code, document = execute(os.environ, stdin)
    if document is not None:
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()
    sys.exit(code)


__all__ = ["execute", "main", "run"]
