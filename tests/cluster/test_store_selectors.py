"""Label and field selectors through Store.list, including the indexed paths (namespace, name, node)."""

from __future__ import annotations

from typing import Any

import pytest

from bayport.cluster.errors import ApiError
from bayport.cluster.selectors import parse_label_selector
from bayport.cluster.store import Store


@pytest.fixture
def store() -> Store:
    s = Store()
    for ns in ("default", "team"):
        s.create("namespaces", {"metadata": {"name": ns}})
    specs = [("a", "default", {"app": "web", "tier": "front"}, "n1", "Running"),
             ("b", "default", {"app": "web", "tier": "back"}, "n2", "Pending"),
             ("c", "default", {"app": "db"}, "", "Pending"),
             ("d", "team", {"app": "web", "env": "prod"}, "n1", "Running")]
    for name, ns, labels, node, phase in specs:
        obj: dict[str, Any] = {"metadata": {"name": name, "namespace": ns, "labels": labels},
                               "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
        if node:
            obj["spec"]["nodeName"] = node
        s.create("pods", obj)
        s.patch("pods", ns, name, {"status": {"phase": phase}}, "application/merge-patch+json",
                subresource="status")
    return s


def names(store: Store, ns: str | None = None, **kw: str) -> list[str]:
    return [o["metadata"]["name"] for o in store.list("pods", ns, **kw)[0]]


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", ["a", "b", "d"]),
    ("app==web", ["a", "b", "d"]),
    ("app!=web", ["c"]),
    ("app in (web, db),tier", ["a", "b"]),
    ("tier notin (front)", ["b", "c", "d"]),
    ("env", ["d"]),
    ("!tier", ["c", "d"]),
    ("app=web,!env", ["a", "b"]),
    ("", ["a", "b", "c", "d"]),
])
def test_label_selectors(store: Store, selector: str, expected: list[str]) -> None:
    assert names(store, label_selector=selector) == expected


@pytest.mark.parametrize(("selector", "expected"), [
    ("metadata.name=b", ["b"]),
    ("metadata.namespace=team", ["d"]),
    ("metadata.namespace!=team", ["a", "b", "c"]),
    ("spec.nodeName=n1", ["a", "d"]),
    ("spec.nodeName=", ["c"]),
    ("spec.nodeName!=", ["a", "b", "d"]),
    ("status.phase=Running", ["a", "d"]),
    ("status.phase!=Running,spec.nodeName=n2", ["b"]),
    ("metadata.labels.app=db", ["c"]),
])
def test_field_selectors(store: Store, selector: str, expected: list[str]) -> None:
    assert names(store, field_selector=selector) == expected


def test_namespace_scoping_and_combination(store: Store) -> None:
    assert names(store, "default", label_selector="app=web") == ["a", "b"]
    assert names(store, "team", field_selector="spec.nodeName=n1") == ["d"]
    assert names(store, "default", field_selector="metadata.namespace=team") == []


def test_malformed_selectors_are_bad_requests(store: Store) -> None:
    for bad in ("app in (web", "a b c", "app=in valid"):
        with pytest.raises(ApiError) as exc:
            store.list("pods", label_selector=bad)
        assert exc.value.code == 400
    with pytest.raises(ApiError) as exc:
        store.list("pods", field_selector="nonsense")
    assert exc.value.code == 400


def test_parse_is_cached_and_none_for_empty() -> None:
    assert parse_label_selector("") is None
    assert parse_label_selector("a=b") is parse_label_selector("a=b")
