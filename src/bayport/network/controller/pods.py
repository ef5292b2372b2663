"""What the controller keeps of a pod, and the patch that writes a port onto it.

A watch event's lightkube ``Pod`` is reduced to a ``PodView`` at once (uid, name,
namespace, host networking, the three port annotations), so the controller's memory and
its comparisons stay small. ``annotation_patch`` builds the JSON patch that ``bay`` sends:
it first tests ``metadata.uid``, so a port is never written onto a newer pod that took a
deleted pod's name while the patch was in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightkube.resources.core_v1 import Pod

from bayport.network.annotation_keys import NEUTRON_PORT, NEUTRON_SUBNET, PORT_ID

PORT_KEYS = (NEUTRON_PORT, NEUTRON_SUBNET, PORT_ID)
Annotations = tuple[str | None, str | None, str | None]
NO_ANNOTATIONS: Annotations = (None, None, None)


@dataclass(frozen=True, slots=True)
class PodView:
    uid: str
    namespace: str
    name: str
    host_network: bool
    has_annotations: bool
    port_annotations: Annotations
    # Succeeded or Failed: its containers are gone for good, so its address can go back to the
    # pool (Kubernetes frees a finished pod's IP when the sandbox goes, not when the pod object does).
    finished: bool = False

    @classmethod
    def of(cls, pod: Pod) -> PodView | None:
        meta = pod.metadata
        if meta is None or not meta.uid or not meta.name:
            return None
        annotations = meta.annotations
        found: Annotations = NO_ANNOTATIONS
        if annotations:
            found = (annotations.get(NEUTRON_PORT), annotations.get(NEUTRON_SUBNET),
                     annotations.get(PORT_ID))
        phase = pod.status.phase if pod.status is not None else None
        return cls(uid=meta.uid, namespace=meta.namespace or "default", name=meta.name,
                   host_network=bool(pod.spec is not None and pod.spec.hostNetwork),
                   has_annotations=annotations is not None, port_annotations=found,
                   finished=phase in ("Succeeded", "Failed"))

    @property
    def port_id(self) -> str | None:
        return self.port_annotations[2]

    @property
    def needs_port(self) -> bool:
        """Pods on the host's network use the node's address and get no port."""
        return not self.host_network

    @property
    def holds_port(self) -> bool:
        """Should have a port now: a pod network pod that has not finished."""
        return self.needs_port and not self.finished


def as_tuple(annotations: dict[str, str]) -> Annotations:
    return (annotations[NEUTRON_PORT], annotations[NEUTRON_SUBNET], annotations[PORT_ID])


def _pointer(key: str) -> str:
    """An annotation key as a JSON pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def annotation_patch(pod: PodView, wanted: dict[str, str]) -> list[dict[str, Any]]:
    """JSON patch: ``test`` the uid, then add (or overwrite) the port annotations.

    A pod without any annotations gets the map whole; otherwise each key is added, which
    keeps the annotations others wrote.
    """
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": pod.uid}]
    if not pod.has_annotations:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": dict(wanted)})
    else:
        ops += [{"op": "add", "path": f"/metadata/annotations/{_pointer(k)}", "value": v}
                for k, v in wanted.items()]
    return ops
