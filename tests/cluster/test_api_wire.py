"""The wire kubectl 1.37 and client-go speak, over real HTTP against a bare API server: protobuf
request bodies and responses (negotiated by Accept), a malformed protobuf body as a 400 Status,
watch-list (``sendInitialEvents``) with its closing BOOKMARK, idle bookmarks, protobuf watch
frames, and the trailing slashes the kube-apiserver tolerates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from bayport.cluster.http.protobuf import codec
from tests.cluster.apiserver_helpers import TABLE, BareApi, bare_api, pod_manifest
from tests.cluster.test_protobuf_codec import KUBECTL_NAMESPACE, envelope

PROTO = "application/vnd.kubernetes.protobuf"
CLIENT_GO = {"Content-Type": PROTO, "Accept": f"{PROTO},application/json"}
PODS = "/api/v1/namespaces/default/pods"
WATCH_LIST = {"watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
              "allowWatchBookmarks": "true"}


@pytest.fixture
async def api() -> AsyncIterator[BareApi]:
    async with bare_api(bookmark_interval=0.2) as served:
        yield served


async def test_kubectl_protobuf_create_answers_in_protobuf(api: BareApi) -> None:
    response = await api.client.post("/api/v1/namespaces", content=KUBECTL_NAMESPACE, headers=CLIENT_GO)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == PROTO
    created = codec.decode(response.content)
    assert created["kind"] == "Namespace" and created["metadata"]["name"] == "wx"
    assert created["metadata"]["uid"] and created["status"] == {"phase": "Active"}
    assert api.store.get("namespaces", None, "wx")["metadata"]["uid"] == created["metadata"]["uid"]

    again = await api.client.post("/api/v1/namespaces", content=KUBECTL_NAMESPACE, headers=CLIENT_GO)
    assert again.status_code == 409 and again.headers["content-type"] == PROTO
    status = codec.decode(again.content)
    assert status["kind"] == "Status" and status["reason"] == "AlreadyExists" and status["code"] == 409


async def test_json_clients_and_tables_still_get_json(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a"))
    plain = await api.client.get(PODS)
    assert plain.headers["content-type"] == "application/json" and plain.json()["kind"] == "PodList"
    table = await api.client.get(PODS, headers={"Accept": f"{PROTO};as=Table;v=v1;g=meta.k8s.io,{TABLE}"})
    assert table.json()["kind"] == "Table"
    weighted = await api.client.get(PODS, headers={"Accept": f"{PROTO};q=0.5,application/json"})
    assert weighted.headers["content-type"] == "application/json"
    listed = await api.client.get(PODS, headers=CLIENT_GO)
    assert listed.headers["content-type"] == PROTO
    pods = codec.decode(listed.content)
    assert pods["kind"] == "PodList" and [p["metadata"]["name"] for p in pods["items"]] == ["a"]


@pytest.mark.parametrize("body", [b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\xff\x01zz",
                                  b'{"apiVersion": "v1", "kind": "Namespace"}'])
async def test_malformed_protobuf_body_is_a_400_that_says_so(api: BareApi, body: bytes) -> None:
    response = await api.client.post("/api/v1/namespaces", content=body, headers={"Content-Type": PROTO})
    assert response.status_code == 400
    status = response.json()
    assert status["reason"] == "BadRequest"
    assert status["message"].startswith("error decoding the protobuf request body: ")
    assert [n["metadata"]["name"] for n in api.store.list("namespaces")[0]] == ["default", "kube-system"]


async def test_protobuf_update_delete_options_and_access_review(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a"))
    current = codec.decode((await api.client.get(f"{PODS}/a", headers=CLIENT_GO)).content)
    current["metadata"]["labels"] = {"x": "1"}
    replaced = await api.client.put(f"{PODS}/a", content=codec.encode(current), headers=CLIENT_GO)
    assert replaced.status_code == 200, replaced.text
    assert api.store.get("pods", "default", "a")["metadata"]["labels"] == {"x": "1"}

    options = {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
               "preconditions": {"uid": "not-this-pod"}}
    refused = await api.client.request("DELETE", f"{PODS}/a", content=codec.encode(options),
                                       headers=CLIENT_GO)
    assert refused.status_code == 409 and codec.decode(refused.content)["reason"] == "Conflict"
    options["preconditions"] = {"uid": current["metadata"]["uid"]}
    deleted = await api.client.request("DELETE", f"{PODS}/a", content=codec.encode(options),
                                       headers=CLIENT_GO)
    assert deleted.status_code == 200, deleted.text

    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}}
    answer = await api.client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                   content=codec.encode(review), headers=CLIENT_GO)
    assert answer.status_code == 201 and codec.decode(answer.content)["status"]["allowed"] is True


async def test_trailing_slashes_are_tolerated(api: BareApi) -> None:
    assert (await api.client.get("/version/")).json()["major"] == "1"
    assert (await api.client.get("/api/v1/namespaces/")).json()["kind"] == "NamespaceList"
    assert (await api.client.get("/apis/")).json()["kind"] == "APIGroupList"
    assert (await api.client.get("/api/v1/namespaces/default/")).json()["metadata"]["name"] == "default"


async def json_events(api: BareApi, params: dict[str, str], count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with api.client.stream("GET", PODS, params=params) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                events.append(orjson.loads(line))
            if len(events) == count:
                break
    return events


async def test_watch_list_sends_initial_objects_then_the_end_bookmark(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a"))
    api.store.create("pods", pod_manifest("b"))
    listed_rv = api.store.resource_version

    async def writer() -> None:
        await asyncio.sleep(0.05)
        await api.client.post(PODS, json=pod_manifest("c"))

    task = asyncio.create_task(writer())
    # A resourceVersion with sendInitialEvents is a lower bound, not a replay point.
    events = await asyncio.wait_for(json_events(api, {**WATCH_LIST, "resourceVersion": "1"}, 4), 5)
    await task
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
        ("ADDED", "a"), ("ADDED", "b"), ("BOOKMARK", None), ("ADDED", "c")]
    end = events[2]["object"]
    assert end["kind"] == "Pod" and end["apiVersion"] == "v1"
    assert end["metadata"] == {"resourceVersion": str(listed_rv),
                               "annotations": {"k8s.io/initial-events-end": "true"}}


async def test_idle_watch_gets_bookmarks_with_the_newest_resource_version(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a"))
    rv = api.store.resource_version
    events = await asyncio.wait_for(json_events(api, {"watch": "1", "resourceVersion": str(rv),
                                                      "allowWatchBookmarks": "true"}, 2), 5)
    assert [e["type"] for e in events] == ["BOOKMARK", "BOOKMARK"]
    assert events[0]["object"]["metadata"] == {"resourceVersion": str(rv)}
    plain = await asyncio.wait_for(json_events(api, {"watch": "1"}, 1), 5)
    assert plain[0]["type"] == "ADDED"           # no bookmarks unless asked for


@pytest.mark.parametrize("params, field", [
    ({"watch": "1", "sendInitialEvents": "true", "allowWatchBookmarks": "true"}, "resourceVersionMatch"),
    ({"watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"},
     "allowWatchBookmarks"),
    ({"watch": "1", "resourceVersionMatch": "NotOlderThan"}, "resourceVersionMatch"),
])
async def test_invalid_watch_list_options_are_422(api: BareApi, params: dict[str, str], field: str) -> None:
    response = await api.client.get(PODS, params=params)
    assert response.status_code == 422
    assert response.json()["details"]["causes"][0]["field"] == field


async def test_protobuf_watch_streams_length_prefixed_frames(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a"))
    frames: list[bytes] = []
    buffer = b""
    async with api.client.stream("GET", PODS, params=WATCH_LIST, headers=CLIENT_GO) as response:
        assert response.headers["content-type"] == f"{PROTO};stream=watch"
        async for chunk in response.aiter_bytes():
            buffer += chunk
            while len(buffer) >= 4 and len(buffer) >= 4 + int.from_bytes(buffer[:4], "big"):
                size = int.from_bytes(buffer[:4], "big")
                frames.append(buffer[4:4 + size])
                buffer = buffer[4 + size:]
            if len(frames) >= 2:
                break
    events = [codec.decode(envelope(b"v1", b"WatchEvent", frame)) for frame in frames]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[0]["object"]["metadata"]["name"] == "a"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
