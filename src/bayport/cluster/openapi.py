"""OpenAPI v3 documents for the served group-versions, and the server-side field validation
(``fieldValidation=Strict|Warn|Ignore``) that uses the same schemas.

kubectl reads ``/openapi/v3`` to learn that the server validates fields itself (the PATCH
operations declare a ``fieldValidation`` query parameter) and, for client-side ``apply``, the
patch merge keys of lists. Schemas are closed where Bayport's users write fields (pod spec,
containers, services, rcs, jobs, pvcs) and open (``x-kubernetes-preserve-unknown-fields``)
for the deep corners (probes, affinity, volume sources, status), so valid manifests never fail.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from bayport.cluster.resources import RESOURCES, Resource

Schema = dict[str, Any]
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_CORE = "io.k8s.api.core.v1."
_BATCH = "io.k8s.api.batch.v1."
_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer", "format": "int32"}
_INT64: Schema = {"type": "integer", "format": "int64"}
_BOOL: Schema = {"type": "boolean"}
_OPEN: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_SMAP: Schema = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
_INT_OR_STRING: Schema = {"x-kubernetes-int-or-string": True}
_QUANTITY_MAP: Schema = {"type": "object", "additionalProperties": _INT_OR_STRING}


def _ref(name: str) -> Schema:
    return {"allOf": [{"$ref": f"#/components/schemas/{name}"}], "default": {}}


def _array(items: Schema, merge_key: str | None = None, strategy: str | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if merge_key:
        schema["x-kubernetes-patch-merge-key"] = merge_key
        schema["x-kubernetes-list-type"] = "map"
        schema["x-kubernetes-list-map-keys"] = [merge_key]
    if strategy:
        schema["x-kubernetes-patch-strategy"] = strategy
    return schema


def _strings() -> Schema:
    return _array(_STR)


def _obj(props: dict[str, Schema], required: tuple[str, ...] = (), *, gvk: Resource | None = None,
         kind: tuple[str, str, str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if gvk is not None:
        kind = (gvk.group, gvk.version, gvk.kind)
    if kind is not None:
        schema["x-kubernetes-group-version-kind"] = [{"group": kind[0], "version": kind[1], "kind": kind[2]}]
    return schema


def _top(res: Resource, spec: Schema | None, status: Schema | None = None, **extra: Schema) -> Schema:
    props: dict[str, Schema] = {"apiVersion": _STR, "kind": _STR, "metadata": _ref(_META + "ObjectMeta")}
    if spec is not None:
        props["spec"] = spec
    if status is not None:
        props["status"] = status
    props.update(extra)
    return _obj(props, gvk=res)


def _schemas() -> dict[str, Schema]:
    container = _obj({
        "name": _STR, "image": _STR, "command": _strings(), "args": _strings(), "workingDir": _STR,
        "ports": _array(_ref(_CORE + "ContainerPort"), "containerPort", "merge"),
        "envFrom": _array(_OPEN), "env": _array(_ref(_CORE + "EnvVar"), "name", "merge"),
        "resources": _OPEN, "resizePolicy": _array(_OPEN), "restartPolicy": _STR,
        "restartPolicyRules": _array(_OPEN),
        "volumeMounts": _array(_ref(_CORE + "VolumeMount"), "mountPath", "merge"),
        "volumeDevices": _array(_OPEN, "devicePath", "merge"),
        "livenessProbe": _OPEN, "readinessProbe": _OPEN, "startupProbe": _OPEN, "lifecycle": _OPEN,
        "terminationMessagePath": _STR, "terminationMessagePolicy": _STR, "imagePullPolicy": _STR,
        "securityContext": _OPEN, "stdin": _BOOL, "stdinOnce": _BOOL, "tty": _BOOL,
    }, ("name",))
    pod_spec = _obj({
        "volumes": _array(_ref(_CORE + "Volume"), "name", "merge,retainKeys"),
        "initContainers": _array(_ref(_CORE + "Container"), "name", "merge"),
        "containers": _array(_ref(_CORE + "Container"), "name", "merge"),
        "ephemeralContainers": _array(_OPEN, "name", "merge"),
        "restartPolicy": _STR, "terminationGracePeriodSeconds": _INT64, "activeDeadlineSeconds": _INT64,
        "dnsPolicy": _STR, "nodeSelector": _SMAP, "serviceAccountName": _STR, "serviceAccount": _STR,
        "automountServiceAccountToken": _BOOL, "nodeName": _STR, "hostNetwork": _BOOL, "hostPID": _BOOL,
        "hostIPC": _BOOL, "shareProcessNamespace": _BOOL, "securityContext": _OPEN,
        "imagePullSecrets": _array(_OPEN, "name", "merge"), "hostname": _STR, "subdomain": _STR,
        "affinity": _OPEN, "schedulerName": _STR, "tolerations": _array(_OPEN),
        "hostAliases": _array(_OPEN, "ip", "merge"), "priorityClassName": _STR, "priority": _INT,
        "dnsConfig": _OPEN, "readinessGates": _array(_OPEN), "runtimeClassName": _STR,
        "enableServiceLinks": _BOOL, "preemptionPolicy": _STR, "overhead": _QUANTITY_MAP,
        "topologySpreadConstraints": _array(_OPEN, "topologyKey", "merge"), "setHostnameAsFQDN": _BOOL,
        "os": _OPEN, "hostUsers": _BOOL, "schedulingGates": _array(_OPEN, "name", "merge"),
        "resourceClaims": _array(_OPEN, "name", "merge,retainKeys"), "resources": _OPEN,
        "hostnameOverride": _STR,
    }, ("containers",))
    template = _obj({"metadata": _ref(_META + "ObjectMeta"), "spec": _ref(_CORE + "PodSpec")})
    r = RESOURCES
    return {
        _META + "ObjectMeta": _obj({
            "name": _STR, "generateName": _STR, "namespace": _STR, "selfLink": _STR, "uid": _STR,
            "resourceVersion": _STR, "generation": _INT64, "creationTimestamp": _STR,
            "deletionTimestamp": _STR, "deletionGracePeriodSeconds": _INT64, "labels": _SMAP,
            "annotations": _SMAP,
            "ownerReferences": _array(_ref(_META + "OwnerReference"), "uid", "merge"),
            "finalizers": _array(_STR, None, "merge"), "managedFields": _array(_OPEN),
        }),
        _META + "OwnerReference": _obj({"apiVersion": _STR, "kind": _STR, "name": _STR, "uid": _STR,
                                        "controller": _BOOL, "blockOwnerDeletion": _BOOL},
                                       ("apiVersion", "kind", "name", "uid")),
        _META + "LabelSelector": _obj({"matchLabels": _SMAP, "matchExpressions": _array(_OPEN)}),
        _META + "Patch": {"type": "object"},
        _CORE + "Container": container,
        _CORE + "ContainerPort": _obj({"name": _STR, "hostPort": _INT, "containerPort": _INT,
                                       "protocol": _STR, "hostIP": _STR}, ("containerPort",)),
        _CORE + "EnvVar": _obj({"name": _STR, "value": _STR, "valueFrom": _OPEN}, ("name",)),
        _CORE + "VolumeMount": _obj({"name": _STR, "readOnly": _BOOL, "recursiveReadOnly": _STR,
                                     "mountPath": _STR, "subPath": _STR, "mountPropagation": _STR,
                                     "subPathExpr": _STR}, ("name", "mountPath")),
        _CORE + "Volume": {**_OPEN, "properties": {"name": _STR}, "required": ["name"]},
        _CORE + "PodSpec": pod_spec,
        _CORE + "PodTemplateSpec": template,
        _CORE + "Pod": _top(r["pods"], _ref(_CORE + "PodSpec"), _OPEN),
        _CORE + "ServicePort": _obj({"name": _STR, "protocol": _STR, "appProtocol": _STR, "port": _INT,
                                     "targetPort": _INT_OR_STRING, "nodePort": _INT}, ("port",)),
        _CORE + "Service": _top(r["services"], _obj({
            "ports": _array(_ref(_CORE + "ServicePort"), "port", "merge"), "selector": _SMAP,
            "clusterIP": _STR, "clusterIPs": _strings(), "type": _STR, "externalIPs": _strings(),
            "sessionAffinity": _STR, "loadBalancerIP": _STR, "loadBalancerSourceRanges": _strings(),
            "externalName": _STR, "externalTrafficPolicy": _STR, "healthCheckNodePort": _INT,
            "publishNotReadyAddresses": _BOOL, "sessionAffinityConfig": _OPEN, "ipFamilies": _strings(),
            "ipFamilyPolicy": _STR, "allocateLoadBalancerNodePorts": _BOOL, "loadBalancerClass": _STR,
            "internalTrafficPolicy": _STR, "trafficDistribution": _STR}), _OPEN),
        _CORE + "ReplicationController": _top(r["replicationcontrollers"], _obj({
            "replicas": _INT, "minReadySeconds": _INT, "selector": _SMAP,
            "template": _ref(_CORE + "PodTemplateSpec")}), _OPEN),
        _CORE + "Namespace": _top(r["namespaces"], _OPEN, _OPEN),
        _CORE + "Node": _top(r["nodes"], _OPEN, _OPEN),
        _CORE + "PersistentVolumeClaim": _top(r["persistentvolumeclaims"], _obj({
            "accessModes": _strings(), "selector": _ref(_META + "LabelSelector"), "resources": _OPEN,
            "volumeName": _STR, "storageClassName": _STR, "volumeMode": _STR, "dataSource": _OPEN,
            "dataSourceRef": _OPEN, "volumeAttributesClassName": _STR}), _OPEN),
        _CORE + "PersistentVolume": _top(r["persistentvolumes"], _OPEN, _OPEN),
        _CORE + "Endpoints": _top(r["endpoints"], None, None, subsets=_array(_OPEN)),
        _CORE + "Event": _top(r["events"], None, None, involvedObject=_OPEN, reason=_STR, message=_STR,
                              source=_OPEN, firstTimestamp=_STR, lastTimestamp=_STR, count=_INT,
                              type=_STR, eventTime=_STR, series=_OPEN, action=_STR, related=_OPEN,
                              reportingComponent=_STR, reportingInstance=_STR),
        _CORE + "Binding": _obj({"apiVersion": _STR, "kind": _STR, "metadata": _ref(_META + "ObjectMeta"),
                                 "target": _OPEN}, ("target",), kind=("", "v1", "Binding")),
        "io.k8s.api.autoscaling.v1.Scale": _obj({
            "apiVersion": _STR, "kind": _STR, "metadata": _ref(_META + "ObjectMeta"),
            "spec": _obj({"replicas": _INT}), "status": _OPEN}, kind=("autoscaling", "v1", "Scale")),
        _BATCH + "Job": _top(r["jobs"], _obj({
            "parallelism": _INT, "completions": _INT, "activeDeadlineSeconds": _INT64,
            "podFailurePolicy": _OPEN, "successPolicy": _OPEN, "backoffLimit": _INT,
            "backoffLimitPerIndex": _INT, "maxFailedIndexes": _INT,
            "selector": _ref(_META + "LabelSelector"), "manualSelector": _BOOL,
            "template": _ref(_CORE + "PodTemplateSpec"), "ttlSecondsAfterFinished": _INT,
            "completionMode": _STR, "suspend": _BOOL, "podReplacementPolicy": _STR, "managedBy": _STR},
            ), _OPEN),
    }


@cache
def schemas() -> dict[str, Schema]:
    return _schemas()


def _schema_name(res: Resource) -> str:
    return (_BATCH if res.group == "batch" else _CORE) + res.kind


_WRITE_PARAMS = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
]
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
                "application/merge-patch+json", "application/strategic-merge-patch+json")


def _operation(action: str, res: Resource, schema_name: str, op_id: str,
               gvk: tuple[str, str, str] | None = None) -> Schema:
    group, version, kind = gvk or (res.group, res.version, res.kind)
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}
    op: Schema = {
        "operationId": op_id,
        "responses": {"200": {"description": "OK", "content": content}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind},
    }
    if action in ("post", "put", "patch"):
        params = list(_WRITE_PARAMS)
        if action == "patch":
            params.append({"name": "force", "in": "query", "schema": {"type": "boolean",
                                                                      "uniqueItems": True}})
            body = {t: {"schema": {"$ref": f"#/components/schemas/{_META}Patch"}} for t in _PATCH_TYPES}
        else:
            body = content
        op["parameters"] = params
        op["requestBody"] = {"content": body, "required": True}
    return op


def _paths(group: str, version: str) -> dict[str, Schema]:
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Schema] = {}
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ns_param = {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}
    for res in RESOURCES.values():
        if res.group != group or res.version != version:
            continue
        schema = _schema_name(res)
        op = f"{'Batch' if group else 'Core'}V1{'Namespaced' if res.namespaced else ''}{res.kind}"
        base = f"{prefix}/namespaces/{{namespace}}/{res.plural}" if res.namespaced \
            else f"{prefix}/{res.plural}"
        scope = [ns_param] if res.namespaced else []
        paths[base] = {"get": _operation("list", res, schema, f"list{op}"),
                       "post": _operation("post", res, schema, f"create{op}"), "parameters": scope}
        paths[f"{base}/{{name}}"] = {
            "get": _operation("get", res, schema, f"read{op}"),
            "put": _operation("put", res, schema, f"replace{op}"),
            "patch": _operation("patch", res, schema, f"patch{op}"),
            "delete": _operation("delete", res, schema, f"delete{op}"),
            "parameters": [name_param, *scope]}
        for sub in res.subresources:
            if sub.name not in ("status", "scale"):
                continue
            sub_schema = "io.k8s.api.autoscaling.v1.Scale" if sub.name == "scale" else schema
            gvk = (sub.group, sub.version, sub.kind) if sub.group else None
            suffix = sub.name.capitalize()
            paths[f"{base}/{{name}}/{sub.name}"] = {
                "get": _operation("get", res, sub_schema, f"read{op}{suffix}", gvk),
                "put": _operation("put", res, sub_schema, f"replace{op}{suffix}", gvk),
                "patch": _operation("patch", res, sub_schema, f"patch{op}{suffix}", gvk),
                "parameters": [name_param, *scope]}
    return paths


@cache
def group_version_document(group: str, version: str) -> bytes:
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": _paths(group, version),
        "components": {"schemas": schemas()},
    }
    return orjson.dumps(doc)


def _doc_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@cache
def index_document() -> bytes:
    paths = {}
    for group, version in (("", "v1"), ("batch", "v1")):
        digest = hashlib.sha512(group_version_document(group, version)).hexdigest()[:128].upper()
        paths[_doc_key(group, version)] = {
            "serverRelativeURL": f"/openapi/v3/{_doc_key(group, version)}?hash={digest}"}
    return orjson.dumps({"paths": paths})


def document_for_path(path: str) -> bytes | None:
    """The OpenAPI v3 document served at ``/openapi/v3/<path>``, or None."""
    key = path.strip("/")
    if key == "api/v1":
        return group_version_document("", "v1")
    if key == "apis/batch/v1":
        return group_version_document("batch", "v1")
    return None


# --- server-side field validation -----------------------------------------------------------------


def _resolve(schema: Schema) -> Schema:
    all_of = schema.get("allOf")
    if all_of and "$ref" in all_of[0]:
        return schemas()[all_of[0]["$ref"].rsplit("/", 1)[1]]
    if "$ref" in schema:
        return schemas()[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _walk(schema: Schema, value: Any, path: str, out: list[str]) -> None:
    """Collect undeclared fields; ``$``-keys are strategic-merge directives, not fields."""
    schema = _resolve(schema)
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            closed = not schema.get("x-kubernetes-preserve-unknown-fields")
            for key, item in value.items():
                if key[:1] == "$" or (not isinstance(item, (dict, list)) and key in props):
                    continue
                sub = props.get(key)
                here = f"{path}.{key}" if path else key
                if sub is None:
                    if closed:
                        out.append(here)
                    continue
                _walk(sub, item, here, out)
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                _walk(schema["additionalProperties"], item, f"{path}[{key}]", out)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{i}]", out)


def unknown_fields(res: Resource, obj: Any) -> list[str]:
    """Field paths in ``obj`` that the kind's schema does not declare (``spec.containers[0].foo``)."""
    if not isinstance(obj, dict):
        return []
    out: list[str] = []
    _walk(schemas()[_schema_name(res)], obj, "", out)
    return out
