"""The store's secondary indexes: object counts, pods by node, objects by uid, and dependents by
owner uid (for garbage collection). Kept apart from ``store`` so that they can be rebuilt from
the objects alone (``Store.revert``) and so that the store module stays about one thing."""

from __future__ import annotations

from typing import Any

from bayport.cluster.resources import RESOURCES

Key = tuple[str, str]                                # (namespace or "", name)
Ident = tuple[str, str, str]                         # (plural, namespace or "", name)


class Indexes:
    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(RESOURCES, 0)
        self.by_node: dict[str, dict[Key, dict[str, Any]]] = {}
        self.uids: dict[str, Ident] = {}
        self.dependents: dict[str, set[Ident]] = {}

    def update(self, plural: str, ns: str, name: str, new: dict[str, Any], old: dict[str, Any] | None,
               deleted: bool) -> None:
        """Follow one write: ``new`` replaces ``old`` (None: created), or ``new`` is gone."""
        key = (ns, name)
        uid = new["metadata"]["uid"]
        if deleted:
            self.counts[plural] -= 1
            self.uids.pop(uid, None)
            self.dependents.pop(uid, None)
        elif old is None:
            self.counts[plural] += 1
            self.uids[uid] = (plural, ns, name)
        if plural == "pods":
            self._by_node(key, new, old, deleted)
        self._owners(plural, key, uid, new, old, deleted)

    def _by_node(self, key: Key, new: dict[str, Any], old: dict[str, Any] | None, deleted: bool) -> None:
        old_node = node_of(old)
        new_node = node_of(new)
        if old_node is not None and (deleted or old_node != new_node):
            bucket = self.by_node.get(old_node)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.by_node[old_node]
        if not deleted and new_node is not None:
            self.by_node.setdefault(new_node, {})[key] = new

    def _owners(self, plural: str, key: Key, uid: str, new: dict[str, Any],
                old: dict[str, Any] | None, deleted: bool) -> None:
        ident = (plural, key[0], key[1])
        before = owner_uids(old) if old is not None else []
        after = [] if deleted else owner_uids(new)
        if before == after:
            return
        for owner in before:
            deps = self.dependents.get(owner)
            if deps is not None:
                deps.discard(ident)
                if not deps:
                    del self.dependents[owner]
        for owner in after:
            self.dependents.setdefault(owner, set()).add(ident)


def owner_uids(obj: dict[str, Any]) -> list[str]:
    refs = obj["metadata"].get("ownerReferences") or ()
    return [r["uid"] for r in refs if isinstance(r, dict) and r.get("uid")]


def node_of(obj: dict[str, Any] | None) -> str | None:
    if obj is None:
        return None
    spec = obj.get("spec")
    return (spec.get("nodeName") or "") if isinstance(spec, dict) else ""
