"""The Kubernetes protobuf codec: bodies captured from kubectl 1.37 decode to what its JSON would
say, every kind the cluster serves survives encode → decode, Go's zero values are dropped but a
pointer's explicit zero is kept, unknown fields are skipped, and malformed bytes are a
ProtobufError (a 400 over HTTP), never another exception."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bayport.cluster.http.protobuf import codec
from bayport.cluster.http.protobuf.wire import (
    ProtobufError,
    length_field,
    read_varint,
    varint,
    varint_field,
)
from bayport.cluster.resources import RESOURCES

# What kubectl 1.37 sent for `kubectl create namespace wx` and
# `kubectl create job j1 --image=busybox -- true` (Go writes every non-pointer field, empty or not).
KUBECTL_NAMESPACE = (b'k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1a\n\x12\n\x02wx\x12\x00\x1a\x00"\x00*\x00'
                     b'2\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00"\x00')
KUBECTL_JOB = (b'k8s\x00\n\x0f\n\x08batch/v1\x12\x03Job\x12\x80\x01\n\x12\n\x02j1\x12\x00\x1a\x00"\x00*\x00'
               b'2\x008\x00B\x00\x12`2^\n\x10\n\x00\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00\x12J\x12\'\n'
               b'\x02j1\x12\x07busybox\x1a\x04true*\x00B\x00j\x00r\x00\x80\x01\x00\x88\x01\x00\x90\x01\x00'
               b'\xa2\x01\x00\x1a\x05Never2\x00B\x00J\x00R\x00X\x00`\x00h\x00\x82\x01\x00\x8a\x01\x00\x9a'
               b'\x01\x00\xc2\x01\x00\x1a\x08 \x00(\x000\x00:\x00\x1a\x00"\x00')

META = {"name": "x", "namespace": "default", "uid": "0b5c4d2e-1", "resourceVersion": "42",
        "generation": 3, "creationTimestamp": "2026-01-02T03:04:05Z",
        "labels": {"app": "web", "tier": ""}, "annotations": {"note": "a b"},
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u1",
                             "controller": True, "blockOwnerDeletion": True}],
        "finalizers": ["kubernetes"],
        "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                           "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]}
POD_SPEC = {
    "containers": [{
        "name": "c", "image": "nginx:1.25", "command": ["sh", "-c"], "args": ["sleep 1"],
        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch", "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
        "livenessProbe": {"tcpSocket": {"port": 80}, "failureThreshold": 1},
        "securityContext": {"runAsNonRoot": False, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "imagePullPolicy": "IfNotPresent"}],
    "volumes": [{"name": "scratch", "emptyDir": {}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 0, "nodeName": "n1",
    "nodeSelector": {"kubernetes.io/os": "linux"}, "hostNetwork": True,
    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
}
POD_STATUS = {"phase": "Running", "podIP": "10.128.0.5", "podIPs": [{"ip": "10.128.0.5"}],
              "startTime": "2026-01-02T03:04:06Z",
              "conditions": [{"type": "Ready", "status": "True",
                              "lastTransitionTime": "2026-01-02T03:04:07Z"}],
              "containerStatuses": [{"name": "c", "ready": True, "restartCount": 2, "image": "nginx:1.25",
                                     "imageID": "sha256:abc", "started": True,
                                     "state": {"running": {"startedAt": "2026-01-02T03:04:07Z"}},
                                     "lastState": {"terminated": {"exitCode": -1, "reason": "Error"}}}]}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}

SAMPLES: dict[str, dict[str, Any]] = {
    "Namespace": {"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
    "Node": {"spec": {"podCIDR": "10.128.1.0/24", "unschedulable": True,
                      "taints": [{"key": "k", "effect": "NoSchedule"}]},
             "status": {"capacity": {"cpu": "2", "pods": "110"}, "allocatable": {"memory": "4Gi"},
                        "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                        "conditions": [{"type": "Ready", "status": "True",
                                        "lastHeartbeatTime": "2026-01-02T03:04:05Z",
                                        "reason": "KubeletReady"}],
                        "nodeInfo": {"kubeletVersion": "v1.31.0", "architecture": "amd64"}}},
    "Pod": {"spec": POD_SPEC, "status": POD_STATUS},
    "Service": {"spec": {"selector": {"app": "web"}, "type": "NodePort", "clusterIP": "10.254.0.9",
                         "clusterIPs": ["10.254.0.9"], "ipFamilies": ["IPv4"],
                         "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080,
                                    "protocol": "TCP"},
                                   {"name": "named", "port": 81, "targetPort": "http"}]}},
    "Endpoints": {"subsets": [{"addresses": [{"ip": "10.128.0.5", "nodeName": "n1",
                                              "targetRef": {"kind": "Pod", "name": "p", "uid": "u"}}],
                               "ports": [{"port": 80, "protocol": "TCP"}]}]},
    "ReplicationController": {"spec": {"replicas": 0, "selector": {"app": "web"}, "template": TEMPLATE},
                              "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 3}},
    "Event": {"involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "Started",
              "message": "Started container c", "type": "Normal", "count": 3,
              "source": {"component": "kubelet", "host": "n1"},
              "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:09Z",
              "eventTime": "2026-01-02T03:04:05.123456Z", "reportingComponent": "kubelet"},
    "PersistentVolumeClaim": {"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                       "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv-1"},
                              "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}},
    "PersistentVolume": {"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                  "hostPath": {"path": "/data/pv-1", "type": "DirectoryOrCreate"},
                                  "persistentVolumeReclaimPolicy": "Delete",
                                  "claimRef": {"namespace": "default", "name": "data"}},
                         "status": {"phase": "Bound"}},
    "Job": {"spec": {"parallelism": 1, "completions": 1, "backoffLimit": 0, "suspend": False,
                     "activeDeadlineSeconds": 60, "ttlSecondsAfterFinished": 0,
                     "selector": {"matchLabels": {"job-name": "j"},
                                  "matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]},
                     "template": {**TEMPLATE, "spec": {**POD_SPEC, "restartPolicy": "Never"}}},
            "status": {"active": 1, "succeeded": 1, "startTime": "2026-01-02T03:04:05Z",
                       "conditions": [{"type": "Complete", "status": "True"}],
                       "uncountedTerminatedPods": {}}},
}


def envelope(api_version: bytes, kind: bytes, raw: bytes) -> bytes:
    return codec.MAGIC + length_field(1, length_field(1, api_version) + length_field(2, kind)) \
        + length_field(2, raw)


def kind_object(kind: str) -> dict[str, Any]:
    res = next(r for r in RESOURCES.values() if r.kind == kind)
    meta = copy.deepcopy(META)
    if not res.namespaced:
        del meta["namespace"]
    return {"apiVersion": res.api_version, "kind": kind, "metadata": meta, **copy.deepcopy(SAMPLES[kind])}


def test_every_served_kind_has_a_sample_and_a_message() -> None:
    assert {r.kind for r in RESOURCES.values()} == set(SAMPLES)
    for r in RESOURCES.values():
        assert codec.message_for(r.api_version, r.kind), r.kind
        assert codec.message_for(r.api_version, f"{r.kind}List"), r.kind


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_kind_and_its_list_round_trip(kind: str) -> None:
    obj = kind_object(kind)
    data = codec.encode(obj)
    assert data.startswith(b"k8s\x00")
    assert codec.decode(data) == obj
    listed = {"apiVersion": obj["apiVersion"], "kind": f"{kind}List",
              "metadata": {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 0},
              "items": [obj, obj]}
    # A typed list's items are bare messages: no TypeMeta on the wire, as from the kube-apiserver.
    bare = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    assert codec.decode(codec.encode(listed)) == {**listed, "items": [bare, bare]}


@pytest.mark.parametrize("obj", [
    {"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": "no",
     "reason": "Invalid", "code": 422,
     "details": {"name": "p", "kind": "pods", "retryAfterSeconds": 1,
                 "causes": [{"reason": "FieldValueRequired", "message": "Required value",
                             "field": "spec.containers[0].image"}]}},
    {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
     "propagationPolicy": "Foreground", "preconditions": {"uid": "u", "resourceVersion": "7"},
     "dryRun": ["All"], "orphanDependents": False},
    {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "9"},
     "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
               {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"size": 3}}]},
    {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
     "metadata": {"resourceVersion": "1"},
     "items": [{"metadata": {"name": "a"}}]},
    {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "rc"}, "spec": {"replicas": 3},
     "status": {"replicas": 2, "selector": "app=web"}},
    {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
     "target": {"kind": "Node", "name": "n1"}},
], ids=lambda o: o["kind"])
def test_meta_kinds_round_trip(obj: dict[str, Any]) -> None:
    assert codec.decode(codec.encode(obj)) == obj


def test_bodies_kubectl_sends_decode_to_what_its_json_says() -> None:
    assert codec.decode(KUBECTL_NAMESPACE) == {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "wx"}}
    job = codec.decode(KUBECTL_JOB)
    assert job == {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j1"},
                   "spec": {"template": {"spec": {"containers": [{"name": "j1", "image": "busybox",
                                                                  "command": ["true"]}],
                                                  "restartPolicy": "Never"}}}}


def test_zero_values_go_writes_are_dropped_but_a_pointers_are_kept() -> None:
    # RC spec: replicas (field 1) is *int32, minReadySeconds (4) a plain int32; both written as 0.
    spec = varint_field(1, 0) + varint_field(4, 0)
    rc = length_field(1, length_field(1, b"rc")) + length_field(2, spec)
    body = codec.MAGIC + length_field(1, length_field(1, b"v1") + length_field(2, b"ReplicationController")) \
        + length_field(2, rc)
    assert codec.decode(body)["spec"] == {"replicas": 0}


def test_unknown_fields_are_skipped_and_packed_repeats_read() -> None:
    extra = varint_field(99, 5) + length_field(98, b"future") + b"\x9d\x06" + b"\x00\x00\x80\x3f"  # fixed32
    ns = length_field(1, length_field(1, b"n") + extra) + extra
    body = codec.MAGIC + length_field(1, length_field(1, b"v1") + length_field(2, b"Namespace")) \
        + length_field(2, ns) + length_field(9, b"envelope-extension")
    assert codec.decode(body) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    # PodSecurityContext.supplementalGroups (repeated int64, field 4) sent packed, as proto3 would.
    spec = codec.MESSAGES["k8s.io.api.core.v1.PodSpec"]
    sc_field = spec.by_json["securityContext"]
    packed = length_field(4, varint(1) + varint(2) + varint(300)) + varint_field(4, 7)
    pod = length_field(2, length_field(sc_field.number, packed))
    body = envelope(b"v1", b"Pod", pod)
    assert codec.decode(body)["spec"] == {"securityContext": {"supplementalGroups": [1, 2, 300, 7]}}
    assert read_varint(varint(-1), 0) == ((1 << 64) - 1, 10)


@pytest.mark.parametrize("body, says", [
    (b"", "does not start with the protobuf prefix"),
    (b'{"kind": "Namespace"}', "does not start with the protobuf prefix"),
    (b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\xff\x01zz", "runs past the end"),
    (b"k8s\x00\x0a\x05\x0a\x02v1\x12", "truncated or overlong varint"),
    (b"k8s\x00\x0a\x06\x0a\x02v1\x12", "runs past the end"),
    (b"k8s\x00\x0a\x04\x0a\x02v1", "has no kind"),
    (b"k8s\x00\x0a\x0a\x0a\x02v1\x12\x04Nope", 'no kind "Nope" is registered for version "v1"'),
    (b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x03\x0a\x01\xff", "truncated or overlong varint"),
    (b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x04\x0a\x02\x08\x01", "expected a string"),
    (b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x05\x0a\x03\x0a\x01\xff", "not valid UTF-8"),
    (b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x02\x0b\x00", "unsupported wire type 3"),
    (b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x1a\x04gzip", "unsupported contentEncoding"),
    (b"k8s\x00\x00", "field number 0"),
])
def test_malformed_bodies_are_protobuf_errors(body: bytes, says: str) -> None:
    with pytest.raises(ProtobufError, match=says.replace("(", r"\(")):
        codec.decode(body)


def test_deeply_nested_envelopes_are_refused() -> None:
    inner = b""
    for _ in range(200):
        item = codec.MAGIC + length_field(1, length_field(1, b"v1") + length_field(2, b"List")) \
            + length_field(2, length_field(2, length_field(1, inner)))
        inner = item
    with pytest.raises(ProtobufError, match="nested too deeply"):
        codec.decode(inner)


def test_values_protobuf_cannot_carry_are_not_encodable() -> None:
    with pytest.raises(codec.NotEncodable):
        codec.encode({"apiVersion": "meta.k8s.io/v1", "kind": "Table", "rows": []})
    with pytest.raises(codec.NotEncodable):
        codec.encode({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "nginx"}})
    with pytest.raises(codec.NotEncodable):
        codec.encode({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}})


def test_watch_frames_are_length_prefixed_bare_watch_events() -> None:
    obj = kind_object("Pod")
    frame = codec.watch_frame("MODIFIED", obj)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    event = frame[4:]
    assert not event.startswith(codec.MAGIC)
    assert codec.decode(envelope(b"v1", b"WatchEvent", event)) == {
        "apiVersion": "v1", "kind": "WatchEvent", "type": "MODIFIED", "object": obj}
