"""Which runtime a cluster's nodes use: the baymodel label ``runtime`` = podman | simulated | auto.

``auto`` (the default) means podman when it works on this machine, else simulated; the choice
and, for simulated, the reason podman was passed over come back as a note the local driver puts
in the bay's status_reason (the nodes carry the chosen runtime in their ``bayport.io/runtime``
label). "Works" is checked once per process: root (network namespaces and bridges), the
``podman`` and ``ip`` commands, ``podman info`` answering with an OCI runtime, and the CNI
plugin the cluster's network needs — bayport-cni for Bayport's pod network, the standard
bridge/static/loopback plugins otherwise. An explicit ``podman`` that cannot work is an error.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from bayport.cluster.runtime.podman_cli import PODMAN, CommandError, run
from bayport.cluster.runtime.podman_net import bayport_cni_path, standard_cni_dir

RUNTIME_LABEL = "runtime"
CHOICES = ("auto", "podman", "simulated")
PROBE_TIMEOUT = 30.0

_UNKNOWN = "?"
_probed: str | None = _UNKNOWN      # the probe's answer, kept for the process's lifetime


@dataclass(frozen=True, slots=True)
class RuntimeChoice:
    runtime: str          # podman | simulated
    note: str             # one phrase for status_reason


async def _probe_podman() -> str | None:
    if os.geteuid() != 0:
        return "podman runtime needs root (it creates network namespaces and bridges)"
    for command in (PODMAN, "ip"):
        if shutil.which(command) is None:
            return f"the {command} command is not installed"
    try:
        info = json.loads(await run([PODMAN, "info", "--format", "json"], timeout=PROBE_TIMEOUT))
    except CommandError as exc:
        return f"podman info failed: {exc.message}"
    except ValueError:
        return "podman info did not answer JSON"
    oci = ((info.get("host") or {}).get("ociRuntime") or {}).get("path")
    if not oci or not os.path.exists(str(oci)):
        return "podman has no usable OCI runtime"
    return None


async def podman_problem(*, bayport_network: bool) -> str | None:
    """None when the podman runtime can run this cluster's pods here, else why not."""
    global _probed
    if _probed == _UNKNOWN:
        _probed = await _probe_podman()
    problem = _probed
    if problem is not None:
        return problem
    if bayport_network and bayport_cni_path() is None:
        return "the bayport-cni plugin is not installed"
    if not bayport_network and standard_cni_dir() is None:
        return "the standard CNI plugins (bridge, static, loopback) are not installed"
    return None


async def podman_available(*, bayport_network: bool = False) -> bool:
    return await podman_problem(bayport_network=bayport_network) is None


async def choose_runtime(requested: str | None, *, bayport_network: bool) -> RuntimeChoice:
    """The runtime for the label value ``requested``; ValueError for a bad value or for an
    explicit podman that cannot work here."""
    wanted = (requested or "auto").strip().lower()
    if wanted not in CHOICES:
        raise ValueError(f"label {RUNTIME_LABEL}={requested!r}: must be one of {', '.join(CHOICES)}")
    if wanted == "simulated":
        return RuntimeChoice("simulated", "runtime simulated")
    problem = await podman_problem(bayport_network=bayport_network)
    if wanted == "podman":
        if problem is not None:
            raise ValueError(f"label {RUNTIME_LABEL}=podman, but podman cannot run pods here: {problem}")
        return RuntimeChoice("podman", "runtime podman")
    if problem is None:
        return RuntimeChoice("podman", "runtime podman (auto: podman works on this machine)")
    return RuntimeChoice("simulated", f"runtime simulated (auto: {problem})")
