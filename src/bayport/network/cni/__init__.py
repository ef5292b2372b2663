"""``bayport-cni``: the CNI 1.0.0 plugin that binds a pod to the port the network
controller annotated on it (DESIGN.md, Network step 2; reference 003, step 4).

The runtime executes it with CNI_* variables and the network configuration on stdin;
``main`` only moves bytes: the logic is in ``commands`` (async, importable, tested).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from bayport.network.cni.commands import run


def main() -> None:
    stdin = sys.stdin.buffer.read()
    code, document = asyncio.run(run(os.environ, stdin))
    if document is not None:
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()
    sys.exit(code)


__all__ = ["main", "run"]
