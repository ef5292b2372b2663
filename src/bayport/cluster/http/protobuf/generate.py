"""Regenerate ``schema.json`` (the protobuf field table the codec reads) from a Kubernetes checkout.

Run as ``python -m bayport.cluster.http.protobuf.generate API_DIR APIMACHINERY_DIR`` with working
trees of github.com/kubernetes/api and /apimachinery. Field numbers and proto types come from their
``generated.proto``; from the Go ``types.go`` beside them come the facts the ``.proto`` does not
carry: the JSON name, whether a field is embedded inline in JSON (``Volume.volumeSource``) and
whether it is a pointer (an explicit zero such as ``replicas: 0`` is kept, a plain field's zero is
Go's "unset"). Only messages reachable from the kinds in ``KINDS`` are written.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# (apiVersion, kind) → proto message served and accepted for it.
KINDS: dict[str, str] = {
    **{f"v1/{k}": f"k8s.io.api.core.v1.{k}" for k in (
        "Namespace", "NamespaceList", "Node", "NodeList", "Pod", "PodList", "Service", "ServiceList",
        "Endpoints", "EndpointsList", "ReplicationController", "ReplicationControllerList", "Event",
        "EventList", "PersistentVolumeClaim", "PersistentVolumeClaimList", "PersistentVolume",
        "PersistentVolumeList", "Binding")},
    "batch/v1/Job": "k8s.io.api.batch.v1.Job",
    "batch/v1/JobList": "k8s.io.api.batch.v1.JobList",
    "autoscaling/v1/Scale": "k8s.io.api.autoscaling.v1.Scale",
    "authorization.k8s.io/v1/SelfSubjectAccessReview":
        "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
    **{f"{gv}/{k}": f"k8s.io.apimachinery.pkg.apis.meta.v1.{k}"
       for gv in ("v1", "meta.k8s.io/v1")
       for k in ("Status", "DeleteOptions", "WatchEvent", "List", "PartialObjectMetadata",
                 "PartialObjectMetadataList")},
}

_PREFIXES = {"k8s.io.api.": "api", "k8s.io.apimachinery.": "apimachinery"}
_FIELD = re.compile(r"^\s*(optional|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")
_MAP = re.compile(r"^\s*map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
_GO_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')
_SCALARS = {"string", "int32", "int64", "bool", "double", "float", "bytes", "uint32", "uint64"}


def _proto_messages(text: str) -> tuple[str, dict[str, list[tuple[str, str, str, int]]]]:
    package = re.search(r"^package\s+([\w.]+);", text, re.M)
    assert package is not None
    messages: dict[str, list[tuple[str, str, str, int]]] = {}
    current: list[tuple[str, str, str, int]] | None = None
    for full_line in text.splitlines():
        line = full_line.split("//", 1)[0]
        start = re.match(r"^message\s+(\w+)\s*\{", line)
        if start:
            current = messages.setdefault(start.group(1), [])
        elif line.startswith("}"):
            current = None
        elif current is not None:
            if m := _FIELD.match(line):
                current.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
            elif m := _MAP.match(line):
                current.append(("map", m.group(2), m.group(3), int(m.group(4))))
    return package.group(1), messages


def _go_fields(texts: list[str]) -> dict[tuple[str, str], tuple[str, bool]]:
    """(Go struct, proto field name) → (JSON name, is a pointer); "" as JSON name means inline."""
    facts: dict[tuple[str, str], tuple[str, bool]] = {}
    for text in texts:
        struct = None
        for line in text.splitlines():
            start = re.match(r"^type\s+(\w+)\s+struct\s*\{", line)
            if start:
                struct = start.group(1)
                continue
            if line.startswith("}"):
                struct = None
            if struct is None or not (m := _GO_FIELD.match(line)):
                continue
            tags = dict(_TAG.findall(m.group(3)))
            if "protobuf" not in tags:
                continue
            go_type = m.group(2).lstrip("*").rsplit(".", 1)[-1]
            proto_name = next((p[5:] for p in tags["protobuf"].split(",") if p.startswith("name=")),
                              go_type[:1].lower() + go_type[1:])  # an embedded struct's default
            json_name = tags.get("json", "").split(",", 1)[0]
            if m.group(1) is None and json_name == "":
                json_name = ""                        # embedded with json:",inline" or json:""
            elif json_name == "":
                json_name = m.group(1)
            facts[(struct, proto_name)] = (json_name, m.group(2).startswith("*"))
    return facts


def _package_dir(roots: dict[str, Path], message: str) -> Path:
    """The checkout directory holding ``message``'s package (k8s.io.api.core.v1 → api/core/v1)."""
    package = message.rsplit(".", 1)[0]
    for prefix, repo in _PREFIXES.items():
        if package.startswith(prefix):
            return roots[repo].joinpath(*package[len(prefix):].split("."))
    raise ValueError(f"no checkout holds {package}")


def _load(folder: Path, table: dict[str, list[list[object]]]) -> None:
    package, messages = _proto_messages((folder / "generated.proto").read_text())
    facts = _go_fields([p.read_text() for p in sorted(folder.glob("*.go"))
                        if not p.name.startswith(("generated.", "zz_")) and not p.name.endswith("_test.go")])
    for name, fields in messages.items():
        rows: list[list[object]] = []
        for label, declared, fname, number in fields:
            json_name, pointer = facts.get((name, fname), (fname, False))
            ptype = declared.lstrip(".")
            if ptype not in _SCALARS and "." not in ptype:
                ptype = f"{package}.{ptype}"
            flags = ("inline" if json_name == "" else "") + (" keep" if pointer else "")
            rows.append([number, json_name, label, ptype, flags.strip()])
        table[f"{package}.{name}"] = rows


def build(api: Path, apimachinery: Path) -> dict[str, object]:
    roots = {"api": api, "apimachinery": apimachinery}
    table: dict[str, list[list[object]]] = {}
    loaded: set[Path] = set()
    reachable: set[str] = set()
    todo = list(KINDS.values())
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        folder = _package_dir(roots, name)
        if folder not in loaded:
            loaded.add(folder)
            _load(folder, table)
        reachable.add(name)
        todo.extend(str(row[3]) for row in table[name] if row[3] not in _SCALARS)
    return {"kinds": KINDS, "messages": {n: table[n] for n in sorted(reachable)}}


def main() -> None:
    schema = build(Path(sys.argv[1]), Path(sys.argv[2]))
    out = Path(__file__).with_name("schema.json")
    out.write_text(json.dumps(schema, indent=0, sort_keys=True).replace("\n", "").replace("],[", "],\n[")
                   + "\n")
    print(f"wrote {out}: {len(schema['messages'])} messages")      # type: ignore[arg-type]


if __name__ == "__main__":
    main()
