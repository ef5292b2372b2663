"""Manifest text → v1 object: the seed's manifests, conversions, and every way to be wrong."""

from __future__ import annotations

from typing import Any

import pytest

from bayport import errors
from bayport.kube.convert import to_v1
from bayport.kube.kinds import POD, RC, SERVICE, prepare
from bayport.kube.manifest import MAX_MANIFEST_BYTES, parse_manifest
from tests.kube import seed


def test_seed_redis_master_v1beta3_becomes_a_v1_pod_with_its_labels_and_images() -> None:
    prepared = prepare(seed.REDIS_MASTER_V1BETA3, POD)
    assert prepared.body["apiVersion"] == "v1"
    assert prepared.body["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert prepared.values == {
        "name": "redis-master", "namespace": "default",
        "labels": {"name": "redis", "redis-sentinel": "true", "role": "master"},
        "images": ["kubernetes/redis:v1", "kubernetes/redis:v1"]}


def test_v1beta3_renames_host_portal_ip_and_privileged() -> None:
    text = ("apiVersion: v1beta3\nkind: Pod\nmetadata: {name: p}\nspec:\n  host: node-1\n"
            "  containers: [{name: c, image: busybox, privileged: true}]\n")
    body = to_v1(parse_manifest(text))
    assert body["spec"]["nodeName"] == "node-1" and "host" not in body["spec"]
    assert body["spec"]["containers"][0]["securityContext"] == {"privileged": True}
    with pytest.raises(errors.InvalidManifest) as err:  # converted, then refused by Pod Security
        prepare(text, POD)
    assert err.value.field == "spec.containers[0].securityContext.privileged"
    svc = prepare("apiVersion: v1beta3\nkind: Service\nmetadata: {name: s}\nspec:\n"
                  "  portalIP: 10.254.0.9\n  createExternalLoadBalancer: true\n  ports: [{port: 80}]\n",
                  SERVICE).body
    assert svc["spec"]["clusterIP"] == "10.254.0.9" and svc["spec"]["type"] == "LoadBalancer"


def test_seed_service_and_rc_v1beta3() -> None:
    svc = prepare(seed.REDIS_SENTINEL_SERVICE_V1BETA3, SERVICE)
    assert svc.values["selector"] == {"redis-sentinel": "true"}
    assert svc.values["ports"] == [{"port": 26379, "targetPort": 26379}]
    rc = prepare(seed.REDIS_RC_V1BETA3, RC)
    assert rc.values["replicas"] == 2 and rc.values["selector"] == {"name": "redis"}
    assert rc.values["images"] == ["kubernetes/redis:v1"]
    assert rc.values["labels"] == {"name": "redis"}  # defaulted from the template, as Kubernetes does


def test_v1beta1_pod_rc_and_service_convert() -> None:
    pod = to_v1(parse_manifest(seed.REDIS_MASTER_V1BETA1))
    assert pod["metadata"] == {"name": "redis-master", "labels": {"name": "redis-master"}}
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 6379, "hostPort": 6379}]
    with pytest.raises(errors.InvalidManifest) as err:  # the 2015 seed's hostPort breaks baseline
        prepare(seed.REDIS_MASTER_V1BETA1, POD)
    assert err.value.field == "spec.containers[0].ports[0].hostPort"
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "100m"}}
    assert pod["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    rc = prepare(seed.FRONTEND_RC_V1BETA1, RC).body
    assert rc["spec"]["selector"] == {"name": "frontend"} and rc["spec"]["replicas"] == 3
    assert rc["spec"]["template"]["metadata"]["labels"] == {"name": "frontend"}
    svc = prepare(seed.FRONTEND_SERVICE_V1BETA1, SERVICE).body
    assert svc["spec"]["ports"] == [{"port": 80, "targetPort": "http-server"}]
    assert svc["spec"]["type"] == "LoadBalancer"


def test_numeric_quantities_become_strings() -> None:
    body = prepare("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
                   "  - {name: c, image: i, resources: {limits: {cpu: 1, memory: 128}}}\n", POD).body
    assert body["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "128"}


@pytest.mark.parametrize(("text", "field", "words"), [
    ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n",
     "spec.containers[0].image", "Required value"),
    ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec: {}\n", "spec.containers", "Required value"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: c, image: i}]}\n",
     "metadata.name", "Required value"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: i}]}\n",
     "metadata.name", "DNS-1123"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", "spec", "Required value"),
    ("kind: Pod\nmetadata: {name: p}\nspec: {}\n", "apiVersion", "Required value"),
    ("apiVersion: v2\nkind: Pod\nmetadata: {name: p}\nspec: {}\n", "apiVersion", "Unsupported value"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: []}\n", "kind", "takes a Pod"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: true}}\n"
     "spec: {containers: [{name: c, image: i}]}\n", "metadata.labels.a", "must be a string"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
     "  - {name: c, image: i, ports: [{containerPort: '80'}]}\n",
     "spec.containers[0].ports[0].containerPort", "between 1 and 65535"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
     "  - {name: c, image: i, volumeMounts: [{name: nope, mountPath: /x}]}\n",
     "spec.containers[0].volumeMounts[0].name", "Not found"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
     "  - {name: c, image: i, stdin: maybe}\n", "spec.containers[0].stdin", "Expected `bool`"),
])
def test_bad_pods_name_the_field(text: str, field: str, words: str) -> None:
    with pytest.raises(errors.InvalidManifest) as err:
        prepare(text, POD)
    assert err.value.field == field
    assert words in err.value.detail
    assert err.value.detail.startswith(field) or field == "kind"


@pytest.mark.parametrize(("text", "field"), [
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {a: b}}\n", "spec.ports"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{targetPort: 80}]}\n",
     "spec.ports[0].port"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: 1svc}\nspec: {ports: [{port: 80}]}\n", "metadata.name"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}, {port: 81}]}\n",
     "spec.ports[0].name"),
])
def test_bad_services_name_the_field(text: str, field: str) -> None:
    with pytest.raises(errors.InvalidManifest) as err:
        prepare(text, SERVICE)
    assert err.value.field == field


@pytest.mark.parametrize(("text", "field"), [
    ("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: r}\nspec: {replicas: 1}\n",
     "spec.template"),
    ("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: r}\nspec:\n  selector: {app: x}\n"
     "  template:\n    metadata: {labels: {app: y}}\n    spec: {containers: [{name: c, image: i}]}\n",
     "spec.template.metadata.labels"),
    ("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: r}\nspec:\n  replicas: -1\n"
     "  template:\n    metadata: {labels: {app: y}}\n    spec: {containers: [{name: c, image: i}]}\n",
     "spec.replicas"),
    ("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: r}\nspec:\n"
     "  template:\n    metadata: {labels: {app: y}}\n    spec: {containers: [{name: c}]}\n",
     "spec.template.spec.containers[0].image"),
])
def test_bad_rcs_name_the_field(text: str, field: str) -> None:
    with pytest.raises(errors.InvalidManifest) as err:
        prepare(text, RC)
    assert err.value.field == field


def test_yaml_errors_report_line_and_column() -> None:
    with pytest.raises(errors.InvalidManifest) as err:
        parse_manifest("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [p\n")
    assert "line 5, column 1" in err.value.detail
    assert err.value.extra == {"line": 5, "column": 1}
    with pytest.raises(errors.InvalidManifest) as err:
        parse_manifest("apiVersion: v1\nkind: Pod\n  oops: 1\n")
    assert "line 3, column 7" in err.value.detail


def test_json_errors_report_line_and_column() -> None:
    with pytest.raises(errors.InvalidManifest) as err:
        parse_manifest('{\n  "kind": "Pod",\n  "apiVersion": v1\n}')
    assert "line 3" in err.value.detail and err.value.extra["line"] == 3


def test_shape_errors() -> None:
    for text in ("", "- a\n- b\n", "a: 1\n---\nb: 2\n", "just a string"):
        with pytest.raises(errors.InvalidManifest):
            parse_manifest(text)
    with pytest.raises(errors.InvalidManifest, match="larger than"):
        parse_manifest("a: " + "x" * MAX_MANIFEST_BYTES)
    assert parse_manifest("t: 2015-06-01T10:00:00Z\n") == {"t": "2015-06-01T10:00:00Z"}


_ESCAPE = ("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n"
           "  volumes: [{{name: {name!r}, emptyDir: {{}}}}]\n"
           "  containers:\n  - {{name: c, image: i, volumeMounts: [{{name: {name!r}, mountPath: /host}}]}}\n")


@pytest.mark.parametrize("name", ["/", "../../../etc", "/etc", "Data", "a" * 64])
def test_volume_names_that_would_be_paths_are_refused(name: str) -> None:
    """The container escape of issue 10: an emptyDir named / mounted the host's root."""
    with pytest.raises(errors.InvalidManifest) as err:
        prepare(_ESCAPE.format(name=name), POD)
    assert err.value.field == "spec.volumes[0].name"
    assert "DNS-1123 label" in err.value.detail


@pytest.mark.parametrize(("volume", "field"), [
    ("{name: d, persistentVolumeClaim: {claimName: ../../etc}}",
     "spec.volumes[0].persistentVolumeClaim.claimName"),
    ("{name: d, configMap: {name: /etc}}", "spec.volumes[0].configMap.name"),
    ("{name: d, secret: {secretName: ..}}", "spec.volumes[0].secret.secretName"),
])
def test_names_of_volume_sources_are_checked(volume: str, field: str) -> None:
    text = f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  volumes: [{volume}]\n" \
           "  containers: [{name: c, image: i}]\n"
    with pytest.raises(errors.InvalidManifest) as err:
        prepare(text, POD)
    assert err.value.field == field


def test_sub_paths_stay_inside_their_volume() -> None:
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes: [{name: d, emptyDir: {}}]\n"
            "  containers:\n  - {name: c, image: i,\n"
            "     volumeMounts: [{name: d, mountPath: /x, subPath: ../../etc}]}\n")
    with pytest.raises(errors.InvalidManifest) as err:
        prepare(text, POD)
    assert err.value.field == "spec.containers[0].volumeMounts[0].subPath"


@pytest.mark.parametrize(("kind", "spec", "field", "words"), [
    (POD, "hostNetwork: true\n  containers: [{name: c, image: i}]", "spec.hostNetwork",
     'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'),
    (POD, "containers: [{name: c, image: i, securityContext: {privileged: true}}]",
     "spec.containers[0].securityContext.privileged", 'privileged (container "c" must not set'),
    (POD, "volumes: [{name: h, hostPath: {path: /}}]\n  containers: [{name: c, image: i}]",
     "spec.volumes[0].hostPath", 'hostPath volumes (volume "h")'),
    (POD, "containers: [{name: c, image: i, ports: [{containerPort: 80, hostPort: 80}]}]",
     "spec.containers[0].ports[0].hostPort", 'hostPort (container "c" uses hostPort 80)'),
    (RC, "template:\n    metadata: {labels: {a: b}}\n"
         "    spec: {hostPID: true, containers: [{name: c, image: i}]}",
     "spec.template.spec.hostPID", "host namespaces (hostPID=true)"),
])
def test_pod_security_baseline_is_refused_naming_the_field(kind: Any, spec: str, field: str,
                                                           words: str) -> None:
    text = f"apiVersion: v1\nkind: {kind.kind}\nmetadata: {{name: p}}\nspec:\n  {spec}\n"
    with pytest.raises(errors.InvalidManifest) as err:
        prepare(text, kind)
    assert err.value.field == field
    assert err.value.detail.startswith(f"{field}: Forbidden: ")
    assert words in err.value.detail
