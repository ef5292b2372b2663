"""Discovery documents kubectl and client libraries read before anything else.

/version, /api (APIVersions), /apis (APIGroupList), /apis/batch (APIGroup) and the
APIResourceLists of v1 and batch/v1 (verbs, short names, subresources such as
``replicationcontrollers/scale`` whose kind is autoscaling/v1 Scale) — all built from
``cluster.resources.RESOURCES``.
"""

from __future__ import annotations

import hashlib
import platform
from typing import Any

from bayport.cluster.resources import RESOURCES, Resource


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def version_info(git_version: str) -> dict[str, str]:
    core = git_version.lstrip("v").split("-", 1)[0].split("+", 1)[0]
    major, minor = ([*core.split("."), "0", "0"])[:2]
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": _hash(git_version) * 2 + "00000000",
        "gitTreeState": "clean",
        "buildDate": "2024-08-13T07:28:49Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": f"linux/{arch}",
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": minor,
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str) -> dict[str, Any]:
    gv = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group("batch")]}


def api_group(name: str) -> dict[str, Any]:
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def _entry(res: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": res.plural,
        "singularName": res.singular,
        "namespaced": res.namespaced,
        "kind": res.kind,
        "verbs": list(res.verbs),
    }
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    entry["storageVersionHash"] = _hash(res.api_version + res.kind)[:11]
    return entry


def resource_list(group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for res in sorted(RESOURCES.values(), key=lambda r: r.plural):
        if res.group != group or res.version != version:
            continue
        resources.append(_entry(res))
        for sub in res.subresources:
            item: dict[str, Any] = {"name": f"{res.plural}/{sub.name}", "singularName": "",
                                    "namespaced": res.namespaced, "kind": sub.kind,
                                    "verbs": list(sub.verbs)}
            if sub.group:
                item["group"] = sub.group
                item["version"] = sub.version
            resources.append(item)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
