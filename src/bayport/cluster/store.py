"""The embedded cluster's object database: in memory, one event loop, Kubernetes semantics.

Every method except watching is synchronous, so each call is atomic with respect to the event loop.
Objects are kept as immutable snapshots (never mutated after commit) indexed by namespace (and pods
by node); callers get private copies, the HTTP layer (``cluster.http``) reads snapshots directly to
serialise them. Every write bumps the global resourceVersion, is appended to a bounded history
for watch replay and is pushed to the matching ``Watch`` queues (``cluster.watch``).
"""

from __future__ import annotations

import builtins
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from bayport.cluster import validation
from bayport.cluster.errors import ApiError, already_exists, conflict, forbidden, invalid, not_found
from bayport.cluster.group_commit import WRITTEN, GroupCommit
from bayport.cluster.indexes import Indexes, Key, node_of, owner_uids
from bayport.cluster.journal import Journal, JournalError
from bayport.cluster.patch import APPLY_PATCH, apply_patch
from bayport.cluster.resources import RESOURCES, Resource
from bayport.cluster.selectors import parse_field_selector, parse_label_selector
from bayport.cluster.watch import ADDED, DELETED, ERROR, MODIFIED, Change, Watch, WatchEvent, clone
from bayport.pod_security import BASELINE

__all__ = ["HISTORY_SIZE", "Store", "Watch", "WatchEvent", "now_iso"]

HISTORY_SIZE = 10_000
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"      # the alphabet Kubernetes' generateName uses
Admission = Callable[[str, dict[str, Any]], None]
WriteAdmission = Callable[[str, dict[str, Any], dict[str, Any] | None], None]   # (plural, new, old)
Objects = list[dict[str, Any]]                       # Store.list shadows the builtin in the class


_stamp: list[Any] = [-1, ""]          # (second, its RFC 3339 text): formatting is per write otherwise


def now_iso() -> str:
    second = int(time.time())
    if second != _stamp[0]:
        _stamp[0], _stamp[1] = second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    text: str = _stamp[1]
    return text


def _unstored(exc: JournalError) -> ApiError:
    full = "full" in str(exc).lower()
    return ApiError(507 if full else 503, "InsufficientStorage" if full else "ServiceUnavailable",
                    f"the object could not be stored: {exc}")


def _resource(plural: str) -> Resource:
    try:
        return RESOURCES[plural]
    except KeyError:
        raise ApiError(404, "NotFound", "the server could not find the requested resource") from None


def _without_rv(obj: dict[str, Any]) -> dict[str, Any]:
    meta = dict(obj["metadata"])
    meta.pop("resourceVersion", None)
    return {**obj, "metadata": meta}


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    """In-memory Kubernetes object store (see CLUSTER_CONTRACT.md for the contract)."""

    def __init__(self, *, validate: bool = True, history_size: int = HISTORY_SIZE) -> None:
        self.resource_version = 0
        self.validate = validate
        self.admission: list[Admission] = []          # create-time hooks (service ClusterIPs)
        self.pod_security = BASELINE                  # Pod Security Standards level (cluster.pod_security)
        self.write_admission: list[WriteAdmission] = []   # create/update checks (may refuse)
        self._data: dict[str, dict[str, dict[str, dict[str, Any]]]] = {p: {} for p in RESOURCES}
        self._ix = Indexes()
        self._history: deque[Change] = deque(maxlen=history_size)
        self._compacted_rv = 0
        self.published_rv = 0                  # the newest change watchers have been told of
        self.journal: Journal | None = None     # durable copy of every write (cluster.journal)
        self.group: GroupCommit | None = None   # batches the journal's writes (cluster.group_commit)
        # watchers bucketed by (namespace or None, required spec.nodeName or None)
        self._watchers: dict[str, dict[tuple[str | None, str | None], list[Watch]]] = {
            p: {} for p in RESOURCES}

    # --- reads --------------------------------------------------------------------------------------

    def get(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        return clone(self.get_snapshot(plural, namespace, name))

    def get_snapshot(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        """The stored object itself: read-only, for serialising without a copy."""
        res = _resource(plural)
        ns = (namespace or "") if res.namespaced else ""
        obj = self._data[plural].get(ns, {}).get(name)
        if obj is None:
            raise not_found(plural, name)
        return obj

    def exists(self, plural: str, namespace: str | None, name: str) -> bool:
        res = _resource(plural)
        ns = (namespace or "") if res.namespaced else ""
        return name in self._data[plural].get(ns, {})

    def list(self, plural: str, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[Objects, int]:
        items, rv = self.list_snapshots(plural, namespace, label_selector=label_selector,
                                        field_selector=field_selector)
        return [clone(o) for o in items], rv

    def list_snapshots(self, plural: str, namespace: str | None = None, *,
                       label_selector: str | None = None, field_selector: str | None = None,
                       start_after: Key | None = None, limit: int | None = None
                       ) -> tuple[Objects, int]:
        """Matching stored objects ordered by (namespace, name), read-only. With ``limit``, at most
        limit+1 items are returned so the caller can tell whether a next page exists."""
        res = _resource(plural)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        if not res.namespaced:
            namespace = None
        if fields is not None:
            ns_req = fields.exact("metadata.namespace")
            if ns_req is not None and res.namespaced:
                if namespace is not None and namespace != ns_req:
                    return [], self.resource_version
                namespace = ns_req
        candidates = self._candidates(plural, res, namespace, fields.exact("metadata.name")
                                      if fields else None,
                                      fields.exact("spec.nodeName") if fields else None)
        out: Objects = []
        for key, obj in candidates:
            if start_after is not None and key <= start_after:
                continue
            if labels is not None and not labels.matches(obj):
                continue
            if fields is not None and not fields.matches(obj):
                continue
            out.append(obj)
            if limit is not None and len(out) > limit:
                break
        return out, self.resource_version

    def _candidates(self, plural: str, res: Resource, namespace: str | None, name: str | None,
                    node: str | None) -> Iterator[tuple[Key, dict[str, Any]]]:
        table = self._data[plural]
        if plural == "pods" and node is not None and name is None:
            bucket = self._ix.by_node.get(node, {})
            for key in sorted(bucket):
                if namespace is None or key[0] == namespace:
                    yield key, bucket[key]
            return
        namespaces = [namespace or ""] if namespace is not None or not res.namespaced else sorted(table)
        for ns in namespaces:
            objs = table.get(ns)
            if not objs:
                continue
            if name is not None:
                if name in objs:
                    yield (ns, name), objs[name]
                continue
            for n in sorted(objs):
                yield (ns, n), objs[n]

    def count(self, plural: str, namespace: str | None = None) -> int:
        if namespace is None or not _resource(plural).namespaced:
            return self._ix.counts[plural]
        return len(self._data[plural].get(namespace, {}))

    # --- writes -------------------------------------------------------------------------------------

    def create(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        return clone(self.create_owned(plural, clone(obj)))

    def create_owned(self, plural: str, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """``create`` for a body the caller hands over; returns the stored snapshot (read-only).
        ``dry_run`` defaults and validates but stores nothing."""
        res = _resource(plural)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        ns = self._namespace_for_write(res, meta)
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = self._generate_name(plural, ns, str(meta["generateName"]))
            meta["name"] = name
        for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "selfLink", "managedFields"):
            meta.pop(transient, None)
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        if self.validate:
            validation.prepare(plural, obj, pod_security_level=self.pod_security)
        name = meta.get("name")
        if not name or not isinstance(name, str):
            raise invalid(res.kind, "", [("metadata.name",
                                          "Required value: name or generateName is required")],
                          group=res.group)
        if name in self._data[plural].get(ns, {}):
            raise already_exists(plural, name)
        for check in self.write_admission:
            check(plural, obj, None)
        if dry_run:
            return obj
        for hook in self.admission:
            hook(plural, obj)
        return self._commit(plural, res, ns, name, obj, None)

    def _namespace_for_write(self, res: Resource, meta: dict[str, Any]) -> str:
        if not res.namespaced:
            meta.pop("namespace", None)
            return ""
        ns = meta.get("namespace") or "default"
        meta["namespace"] = ns
        namespace = self._data["namespaces"].get("", {}).get(ns)
        if namespace is None:
            raise not_found("namespaces", ns)
        if (namespace.get("status") or {}).get("phase") == "Terminating":
            name = meta.get("name") or meta.get("generateName") or ""
            raise forbidden(f'{res.plural} "{name}" is forbidden: unable to create new content in '
                            f"namespace {ns} because it is being terminated", res.plural, name)
        return str(ns)

    def _generate_name(self, plural: str, ns: str, prefix: str) -> str:
        existing = self._data[plural].get(ns, {})
        while True:
            name = prefix + "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(5))
            if name not in existing:
                return name

    def update(self, plural: str, obj: dict[str, Any], *,
               subresource: str | None = None) -> dict[str, Any]:
        return clone(self.update_owned(plural, clone(obj), subresource=subresource))

    def update_owned(self, plural: str, obj: dict[str, Any], *, subresource: str | None = None,
                     namespace: str | None = None, name: str | None = None,
                     dry_run: bool = False) -> dict[str, Any]:
        """``update`` for a body the caller hands over; namespace/name default to the body's."""
        res = _resource(plural)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        name = name or meta.get("name") or ""
        ns = (namespace or meta.get("namespace") or "default") if res.namespaced else ""
        old = self._data[plural].get(ns, {}).get(name)
        if old is None:
            raise not_found(plural, name)
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and str(wanted_rv) != old["metadata"]["resourceVersion"]:
            raise conflict(plural, name)
        if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
            raise conflict(plural, name)
        return self._replace(plural, res, ns, name, old, obj, subresource, validate=self.validate,
                             dry_run=dry_run)

    def _replace(self, plural: str, res: Resource, ns: str, name: str, old: dict[str, Any],
                 obj: dict[str, Any], subresource: str | None, *, validate: bool,
                 dry_run: bool = False) -> dict[str, Any]:
        old_meta = old["metadata"]
        if subresource == "status":
            new = {**clone(old), "status": obj.get("status", {})}
        else:
            new = obj
            meta = new.setdefault("metadata", {})
            meta["name"] = name
            if res.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            for field in ("uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation"):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            new["apiVersion"] = res.api_version
            new["kind"] = res.kind
            if res.has_status() and "status" in old:
                new["status"] = clone(old["status"])
            if validate:
                validation.prepare(plural, new, old, pod_security_level=self.pod_security)
            for check in self.write_admission:
                check(plural, new, old)
            if _spec_part(new) != _spec_part(old):
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if new == old or dry_run:
            return old if new == old else new
        return self._commit(plural, res, ns, name, new, old)

    def patch(self, plural: str, namespace: str | None, name: str, patch: Any, patch_type: str,
              *, subresource: str | None = None) -> dict[str, Any]:
        return clone(self.patch_snapshot(plural, namespace, name, clone({"p": patch})["p"], patch_type,
                                         subresource=subresource))

    def patch_snapshot(self, plural: str, namespace: str | None, name: str, patch: Any,
                       patch_type: str, *, subresource: str | None = None,
                       dry_run: bool = False) -> dict[str, Any]:
        """``patch`` returning the stored snapshot (read-only); ``patch`` may be consumed."""
        res = _resource(plural)
        ns = (namespace or "default") if res.namespaced else ""
        old = self._data[plural].get(ns, {}).get(name)
        if old is None:
            if patch_type == APPLY_PATCH and subresource is None and isinstance(patch, dict):
                meta = patch.setdefault("metadata", {})
                meta["name"] = name
                if res.namespaced:
                    meta["namespace"] = ns
                return self.create_owned(plural, patch, dry_run=dry_run)
            raise not_found(plural, name)
        patched = apply_patch(clone(old), patch, patch_type)
        if not isinstance(patched.get("metadata"), dict):
            patched["metadata"] = {}
        wanted_rv = patched["metadata"].get("resourceVersion")
        if wanted_rv and str(wanted_rv) != old["metadata"]["resourceVersion"]:
            raise conflict(plural, name)
        return self._replace(plural, res, ns, name, old, patched, subresource, validate=self.validate,
                             dry_run=dry_run)

    def mutate(self, plural: str, namespace: str | None, name: str,
               fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read-modify-write for controllers: ``fn`` edits a private copy; no validation, and a
        change-less ``fn`` writes nothing."""
        res = _resource(plural)
        ns = (namespace or "default") if res.namespaced else ""
        old = self._data[plural].get(ns, {}).get(name)
        if old is None:
            raise not_found(plural, name)
        new = clone(old)
        fn(new)
        meta = new.setdefault("metadata", {})
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        meta["uid"] = old["metadata"]["uid"]
        meta["name"] = name
        if new == old:
            return clone(old)
        if _spec_part(new) != _spec_part(old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return clone(self._commit(plural, res, ns, name, new, old))

    def delete(self, plural: str, namespace: str | None, name: str, *,
               grace_period_seconds: int | None = None, propagation: str | None = None
               ) -> dict[str, Any]:
        return clone(self.delete_snapshot(plural, namespace, name,
                                          grace_period_seconds=grace_period_seconds,
                                          propagation=propagation))

    def delete_snapshot(self, plural: str, namespace: str | None, name: str, *,
                        grace_period_seconds: int | None = None, propagation: str | None = None,
                        precondition_uid: str | None = None, precondition_rv: str | None = None,
                        dry_run: bool = False) -> dict[str, Any]:
        """``delete`` returning the final snapshot (read-only). Propagation None means Background
        (dependents go too); "Orphan" strips the owner reference from dependents instead."""
        res = _resource(plural)
        ns = (namespace or "default") if res.namespaced else ""
        old = self._data[plural].get(ns, {}).get(name)
        if old is None:
            raise not_found(plural, name)
        if precondition_uid and precondition_uid != old["metadata"]["uid"]:
            raise conflict(plural, name)
        if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
            raise conflict(plural, name)
        if dry_run:
            return old
        if plural == "namespaces":
            return self._terminate_namespace(res, name, old)
        uid = old["metadata"]["uid"]
        dependents = sorted(self._ix.dependents.get(uid, ()))
        if propagation == "Orphan":
            self._orphan_dependents(uid, dependents)
        elif propagation == "Foreground":
            self._delete_dependents(uid, dependents, propagation)
        final = self._remove(plural, res, ns, name, old, grace_period_seconds)
        if propagation not in ("Orphan", "Foreground"):
            self._delete_dependents(uid, dependents, propagation)
        return final

    def _terminate_namespace(self, res: Resource, name: str, old: dict[str, Any]) -> dict[str, Any]:
        if (old.get("status") or {}).get("phase") == "Terminating":
            return old
        new = clone(old)
        new["metadata"]["deletionTimestamp"] = now_iso()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new["status"] = {**new.get("status", {}), "phase": "Terminating"}
        return self._commit("namespaces", res, "", name, new, old)

    def finalize_namespace(self, name: str) -> None:
        """Remove a Terminating namespace for good (with anything still left inside it)."""
        res = RESOURCES["namespaces"]
        old = self._data["namespaces"].get("", {}).get(name)
        if old is None:
            raise not_found("namespaces", name)
        for plural, table in self._data.items():
            if not RESOURCES[plural].namespaced:
                continue
            for obj_name, obj in list(table.get(name, {}).items()):
                self._remove(plural, RESOURCES[plural], name, obj_name, obj, 0)
        self._remove("namespaces", res, "", name, old, 0)

    def _orphan_dependents(self, uid: str, dependents: Iterable[tuple[str, str, str]]) -> None:
        for plural, ns, name in dependents:
            def strip(obj: dict[str, Any]) -> None:
                refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                if refs:
                    obj["metadata"]["ownerReferences"] = refs
                else:
                    obj["metadata"].pop("ownerReferences", None)
            if self.exists(plural, ns, name):
                self.mutate(plural, ns, name, strip)

    def _delete_dependents(self, uid: str, dependents: Iterable[tuple[str, str, str]],
                           propagation: str | None) -> None:
        for plural, ns, name in dependents:
            obj = self._data[plural].get(ns, {}).get(name)
            if obj is None:
                continue
            others = [u for u in owner_uids(obj) if u != uid and u in self._ix.uids]
            if others:
                continue
            self.delete_snapshot(plural, ns or None, name, grace_period_seconds=0,
                                 propagation=propagation)

    def _remove(self, plural: str, res: Resource, ns: str, name: str, old: dict[str, Any],
                grace_period_seconds: int | None) -> dict[str, Any]:
        meta = dict(old["metadata"])
        if "deletionTimestamp" not in meta:
            meta["deletionTimestamp"] = now_iso()
            meta["deletionGracePeriodSeconds"] = (grace_period_seconds
                                                  if grace_period_seconds is not None else 0)
        final = {**old, "metadata": meta}
        return self._commit(plural, res, ns, name, final, old, deleted=True)

    # --- commit and notification ----------------------------------------------------------------------

    def _commit(self, plural: str, res: Resource, ns: str, name: str, new: dict[str, Any],
                old: dict[str, Any] | None, *, deleted: bool = False) -> dict[str, Any]:
        rv = self.resource_version + 1
        new["metadata"]["resourceVersion"] = str(rv)
        group = self.group
        batched = group is not None and group.accepting
        if self.journal is not None and not batched:   # write through: a refused write changes nothing
            try:
                self.journal.record(plural, ns, name, rv, None if deleted else new)
            except JournalError as exc:
                raise _unstored(exc) from exc
            if group is not None:
                group.written_through(rv)
        self.resource_version = rv
        self._index(plural, ns, name, new, old, deleted)
        change = Change(rv, DELETED if deleted else (MODIFIED if old is not None else ADDED),
                        plural, ns, new, old)
        if batched:
            assert group is not None
            group.submit(change)          # watchers hear of it once it is durable (publish)
        else:
            self.publish((change,))
        WRITTEN.set(rv)
        return new

    def publish(self, changes: Iterable[Change]) -> None:
        """Durable changes into the watch history and to the watchers, in order. Watchers never
        hear of a change that could be reverted, as with etcd's watches."""
        history = self._history
        for change in changes:
            if len(history) == history.maxlen:
                self._compacted_rv = history[0].rv
            history.append(change)
            self.published_rv = change.rv
            self._notify(change)

    async def durable(self, rv: int | None = None) -> None:
        """Wait until the write at ``rv`` (default: every write so far) is in the journal; an
        ApiError 503/507 if it could not be stored and was reverted."""
        if self.group is not None:
            try:
                await self.group.durable(self.resource_version if rv is None else rv)
            except JournalError as exc:
                raise _unstored(exc) from exc

    def revert(self, changes: Sequence[Change]) -> None:
        """Undo applied changes that could not be stored (newest first), so memory is again what
        the journal holds, and rebuild the indexes. No watcher heard of them (``publish``)."""
        for change in reversed(changes):
            meta = change.obj["metadata"]
            bucket = self._data[change.plural].setdefault(change.namespace, {})
            if change.type == ADDED:
                bucket.pop(meta["name"], None)
            elif change.prev is not None:
                bucket[meta["name"]] = change.prev
        tables = {plural: [o for space in by_ns.values() for o in space.values()]
                  for plural, by_ns in self._data.items()}
        self._data = {p: {} for p in RESOURCES}
        self._ix = Indexes()
        for plural, objs in tables.items():
            for obj in objs:
                self._index(plural, obj["metadata"].get("namespace") or "", obj["metadata"]["name"],
                            obj, None, False)

    def _index(self, plural: str, ns: str, name: str, new: dict[str, Any], old: dict[str, Any] | None,
               deleted: bool) -> None:
        table = self._data[plural]
        if deleted:
            bucket = table[ns]
            del bucket[name]
            if not bucket:
                del table[ns]
        else:
            table.setdefault(ns, {})[name] = new
        self._ix.update(plural, ns, name, new, old, deleted)

    def restore(self, journal: Journal) -> int:
        """Take over a journal's objects as they were stored (no admission, no events) and keep
        writing to it; the number of objects. Watches from before the restart get 410."""
        for plural, obj in journal.load():
            meta = obj["metadata"]
            if plural in self._data:
                self._index(plural, meta.get("namespace") or "", meta["name"], obj, None, False)
        self.resource_version = self._compacted_rv = max(journal.resource_version(), self.resource_version)
        self.published_rv = self.resource_version
        self.journal = journal
        return sum(self._ix.counts.values())

    def _notify(self, change: Change) -> None:
        buckets = self._watchers[change.plural]
        if not buckets:
            return
        ns: str | None = change.namespace or None
        nodes: set[str | None] = {None}
        if change.plural == "pods":
            nodes.add(node_of(change.obj))
            nodes.add(node_of(change.prev))
        seen: set[tuple[str | None, str | None]] = set()
        for space in (None, ns):
            for node in nodes:
                slot = (space, node)
                if slot in seen:
                    continue
                seen.add(slot)
                for watch in buckets.get(slot, ()):
                    watch.offer(change)

    # --- watch --------------------------------------------------------------------------------------

    def watch(self, plural: str, namespace: str | None = None, *, resource_version: int | None = None,
              label_selector: str | None = None, field_selector: str | None = None,
              send_initial: bool = False) -> Watch:
        res = _resource(plural)
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        space = namespace if res.namespaced and namespace else None
        node = fields.exact("spec.nodeName") if fields is not None and plural == "pods" else None
        slot = (space, node)
        watch = Watch(plural, space, labels, fields, lambda w: self._unwatch(plural, slot, w))
        watch.after = resource_version or self.resource_version
        if resource_version:
            if resource_version < self._compacted_rv:
                watch.push(ERROR, ApiError(
                    410, "Expired", f"too old resource version: {resource_version} "
                    f"({self._compacted_rv})").status_body())
                watch.closed = True
                return watch
            for change in self._replay(plural, resource_version):
                watch.offer(change)
        elif send_initial:
            items, _ = self.list_snapshots(plural, space, label_selector=label_selector,
                                           field_selector=field_selector)
            for obj in items:
                watch.push(ADDED, obj)
        self._watchers[plural].setdefault(slot, []).append(watch)
        return watch

    def _replay(self, plural: str, after: int) -> tuple[Change, ...]:
        newer: builtins.list[Change] = []
        for change in reversed(self._history):
            if change.rv <= after:
                break
            if change.plural == plural:
                newer.append(change)
        return tuple(reversed(newer))

    def _unwatch(self, plural: str, slot: tuple[str | None, str | None], watch: Watch) -> None:
        watchers = self._watchers[plural].get(slot)
        if watchers is None:
            return
        try:
            watchers.remove(watch)
        except ValueError:
            return
        if not watchers:
            del self._watchers[plural][slot]

    def watcher_count(self) -> int:
        return sum(len(ws) for buckets in self._watchers.values() for ws in buckets.values())
