"""A tenant's Job template: the seed's default, validation of a replacement, rendering a job.

A template is a ``batch/v1`` Job with two placeholders, as in reference 002: ``{}`` twice in
``metadata.name`` (the tenant id, then a per-job hash) and ``{}`` once in one container's
``args`` (the command). Rendering fills them, adds one volume and one mount per requested
claim to that container, and labels the Job and its pods with the job's uuid and tenant so
the conductor's watch can follow them. The namespace is never the template's: a template
that names one is refused, and rendering always sets the tenant's own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import msgspec
from lightkube.resources.batch_v1 import Job

from bayport import errors
from bayport.jobs import JOB_UUID_LABEL, TENANT_LABEL
from bayport.jobs.naming import DNS1123_LABEL, DNS1123_SUBDOMAIN, HASH_LEN, JOB_NAME_MAX, TENANT_ID_MAX
from bayport.pod_security import check_pod, forbidden_message

Obj = dict[str, Any]
PLACEHOLDER = "{}"

DEFAULT_TEMPLATE: Obj = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "job-{}-{}"},
    "spec": {
        "ttlSecondsAfterFinished": 0,
        "template": {
            "spec": {
                "containers": [{
                    "name": "copy",
                    "image": "busybox:1.28.4",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["/bin/sh", "-c", PLACEHOLDER],
                    "volumeMounts": [],
                }],
                "restartPolicy": "Never",
                "volumes": [],
            },
        },
    },
}


def default_template() -> Obj:
    return copy.deepcopy(DEFAULT_TEMPLATE)


def _bad(path: str, message: str) -> errors.InvalidInput:
    return errors.InvalidInput(f"template {path}: {message}", field=f"template.{path}")


def _mapping(parent: Obj, key: str, path: str) -> Obj:
    value = parent.get(key)
    if not isinstance(value, dict):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise _bad(path, f"must be an object, but it is {found}")
    return value


@dataclass(frozen=True)
class CommandSlot:
    """Where the command goes: ``containers[container].args[arg]``."""

    container: int
    arg: int


def command_slot(template: Obj) -> CommandSlot:
    """The one container args entry holding ``{}``; InvalidInput when there are none or several."""
    pod_spec = template["spec"]["template"]["spec"]
    found: list[CommandSlot] = []
    for ci, container in enumerate(pod_spec.get("containers") or []):
        args = container.get("args") if isinstance(container, dict) else None
        for ai, arg in enumerate(args if isinstance(args, list) else []):
            if isinstance(arg, str):
                found.extend(CommandSlot(ci, ai) for _ in range(arg.count(PLACEHOLDER)))
    if len(found) != 1:
        where = ", ".join(f"containers[{s.container}].args[{s.arg}]" for s in found) or "none"
        raise _bad("spec.template.spec.containers[].args",
                   f"needs exactly one '{{}}' placeholder for the command (as in "
                   f"[\"/bin/sh\", \"-c\", \"{{}}\"]); found {len(found)}: {where}")
    return found[0]


def _check_name(meta: Obj) -> None:
    name = meta.get("name")
    if not isinstance(name, str) or name.count(PLACEHOLDER) != 2:
        raise _bad("metadata.name", f"needs the name placeholder: two '{{}}' for the tenant id and the "
                                    f"job's hash, as in 'job-{{}}-{{}}'; found {name!r}")
    sample = name.replace(PLACEHOLDER, "t" * TENANT_ID_MAX, 1).replace(PLACEHOLDER, "0" * HASH_LEN, 1)
    if len(sample) > JOB_NAME_MAX or not DNS1123_LABEL.match(sample):
        raise _bad("metadata.name", f"{name!r} does not make valid job names: with a {TENANT_ID_MAX}-"
                                    f"character tenant id and a {HASH_LEN}-character hash it must stay a "
                                    f"DNS-1123 label of at most {JOB_NAME_MAX} characters")


_POD_PATH = "spec.template.spec"
# Volume sources that name another object; the name is looked up, or becomes a path, on the node.
_SOURCE_NAMES = {"persistentVolumeClaim": "claimName", "configMap": "name", "secret": "secretName"}


def _dns_label(value: Any, path: str, what: str) -> None:
    if not isinstance(value, str) or len(value) > 63 or not DNS1123_LABEL.match(value):
        raise _bad(path, f"{value!r} is not {what}: a DNS-1123 label (lower case letters, digits and '-', "
                         "at most 63 characters)")


def _check_volumes(pod_spec: Obj) -> set[str]:
    """Volume names are DNS labels (a name becomes a directory on the node), used once each; the
    objects a volume names are DNS names too."""
    volumes = pod_spec.get("volumes") or []
    if not isinstance(volumes, list):
        raise _bad(f"{_POD_PATH}.volumes", "must be a list")
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        vpath = f"{_POD_PATH}.volumes[{i}]"
        if not isinstance(volume, dict):
            raise _bad(vpath, "must be an object")
        name = volume.get("name")
        _dns_label(name, f"{vpath}.name", "a valid volume name")
        if name in names:
            raise _bad(f"{vpath}.name", f"{name!r} is used twice")
        names.add(str(name))
        for source, field in _SOURCE_NAMES.items():
            ref = volume[source].get(field) if isinstance(volume.get(source), dict) else None
            if source in volume and (not isinstance(ref, str) or not DNS1123_SUBDOMAIN.match(ref)
                                     or len(ref) > 253):
                raise _bad(f"{vpath}.{source}.{field}", f"{ref!r} is not a valid object name")
    return names


def _check_pod_spec(pod_spec: Obj) -> None:
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise _bad(f"{_POD_PATH}.containers", "needs at least one container")
    volumes = _check_volumes(pod_spec)
    for i, container in enumerate(containers):
        cpath = f"{_POD_PATH}.containers[{i}]"
        if not isinstance(container, dict) or not container.get("name") or not container.get("image"):
            raise _bad(cpath, "needs a name and an image")
        _dns_label(container["name"], f"{cpath}.name", "a valid container name")
        for j, mount in enumerate(container.get("volumeMounts") or []):
            if isinstance(mount, dict) and mount.get("name") not in volumes:
                raise _bad(f"{cpath}.volumeMounts[{j}].name",
                           f"{mount.get('name')!r} names no volume of the template")
    policy = pod_spec.get("restartPolicy")
    if policy not in ("Never", "OnFailure"):
        raise _bad(f"{_POD_PATH}.restartPolicy", f"must be Never or OnFailure for a Job, not {policy!r}")


def _check_pod_security(template: Obj) -> None:
    """The Pod Security Standards baseline the embedded cluster enforces: a tenant's job stays out
    of the node (no host namespaces, host paths, privileged containers ...)."""
    pod_template = template["spec"]["template"]
    violations = check_pod(pod_template.get("metadata") or {}, pod_template["spec"], path=_POD_PATH)
    if violations:
        raise _bad(violations[0].fields[0], forbidden_message(violations))


def validate_template(doc: Any) -> Obj:
    """The template to store (``kind`` normalised to ``Job``), or InvalidInput naming what is wrong.

    A template that sets ``metadata.namespace`` is refused rather than silently overridden:
    a tenant's jobs run in its own namespace and nowhere else.
    """
    if not isinstance(doc, dict):
        raise errors.InvalidInput("template: must be a JSON object (a batch/v1 Job)", field="template")
    template = copy.deepcopy(doc)
    if template.get("apiVersion") != "batch/v1":
        raise _bad("apiVersion", f"must be 'batch/v1', not {template.get('apiVersion')!r}")
    kind = template.get("kind")
    if not isinstance(kind, str) or kind.lower() != "job":
        raise _bad("kind", f"must be 'Job', not {kind!r}")
    template["kind"] = "Job"
    meta = _mapping(template, "metadata", "metadata")
    if meta.get("namespace") is not None:
        raise _bad("metadata.namespace", "must not be set: a tenant's jobs always run in the tenant's "
                                         "own namespace")
    _check_name(meta)
    spec = _mapping(template, "spec", "spec")
    for key in ("selector", "manualSelector"):
        if spec.get(key) is not None:
            raise _bad(f"spec.{key}", "must not be set: the cluster selects a Job's pods itself")
    pod_spec = _mapping(_mapping(spec, "template", "spec.template"), "spec", "spec.template.spec")
    _check_pod_spec(pod_spec)
    _check_pod_security(template)
    command_slot(template)
    sample = render_job_manifest(template, name="job-sample-0000000000", namespace="sample",
                                 tenant_id="sample", job_uuid="sample", cmd="true", vols=[])
    try:
        msgspec.convert(sample, Job)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        path = where.rstrip("`").removeprefix("$").lstrip(".") or "template"
        raise _bad(path, f"invalid value: {message.replace(' | null', '')}") from exc
    return template


def _free_name(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        name = f"{base}-{n}"
        n += 1
    taken.add(name)
    return name


def render_job_manifest(template: Obj, *, name: str, namespace: str, tenant_id: str, job_uuid: str,
                        cmd: str, vols: list[dict[str, str]]) -> Obj:
    """The Job to create: placeholders filled, one volume and mount per claim, labels set.

    ``vols`` were checked by ``submission.check_submission``; a mount point the template's
    container already uses is an InvalidInput naming the entry.
    """
    doc = copy.deepcopy(template)
    labels = {JOB_UUID_LABEL: job_uuid, TENANT_LABEL: tenant_id}
    meta = doc.setdefault("metadata", {})
    meta["name"] = name
    meta["namespace"] = namespace
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    pod_template = doc["spec"]["template"]
    pod_meta = pod_template.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_spec = pod_template["spec"]
    slot = command_slot(doc)
    container = pod_spec["containers"][slot.container]
    container["args"][slot.arg] = container["args"][slot.arg].replace(PLACEHOLDER, cmd, 1)
    volumes = pod_spec.get("volumes") or []
    mounts = container.get("volumeMounts") or []
    taken_names = {str(v.get("name")) for v in volumes if isinstance(v, dict)}
    taken_paths = {m.get("mountPath") for m in mounts if isinstance(m, dict)}
    for i, vol in enumerate(vols):
        if vol["mount"] in taken_paths:
            raise errors.InvalidInput(f"vols[{i}].mount: {vol['mount']} is already a mount point of the "
                                      "tenant's job template", field=f"vols[{i}].mount")
        volume = _free_name(f"vol-{i}", taken_names)
        volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": vol["pvc"]}})
        mounts.append({"name": volume, "mountPath": vol["mount"]})
    pod_spec["volumes"] = volumes
    container["volumeMounts"] = mounts
    return doc
