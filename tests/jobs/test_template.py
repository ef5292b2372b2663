"""Job templates: the seed's default, what a replacement must have (each refusal names the
field), and rendering one job into the tenant's namespace with its claims mounted."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bayport import errors
from bayport.jobs import JOB_UUID_LABEL, TENANT_LABEL
from bayport.jobs.template import DEFAULT_TEMPLATE, default_template, render_job_manifest, validate_template

SEED_VOLS = [{"pvc": "gluster-exam", "mount": "/dest"}, {"pvc": "nfs-exam", "mount": "/src"}]


def _render(template: dict[str, Any], vols: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return render_job_manifest(template, name="job-t1-0123456789", namespace="t1", tenant_id="t1",
                               job_uuid="u-1", cmd="cp -r /src/* /dest/",
                               vols=SEED_VOLS if vols is None else vols)


def _refused(template: Any) -> str:
    with pytest.raises(errors.InvalidInput) as caught:
        validate_template(template)
    return caught.value.detail


def test_default_is_the_seed_template() -> None:
    t = default_template()
    assert t["apiVersion"] == "batch/v1" and t["kind"] == "Job"
    assert t["metadata"] == {"name": "job-{}-{}"}
    assert t["spec"]["ttlSecondsAfterFinished"] == 0
    pod = t["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["volumes"] == []
    (container,) = pod["containers"]
    assert container == {"name": "copy", "image": "busybox:1.28.4", "imagePullPolicy": "IfNotPresent",
                         "args": ["/bin/sh", "-c", "{}"], "volumeMounts": []}
    assert validate_template(t) == t
    t["metadata"]["name"] = "changed"
    assert DEFAULT_TEMPLATE["metadata"]["name"] == "job-{}-{}"  # a copy, never the shared one


def test_seed_body_renders_the_reference_job() -> None:
    job = _render(default_template())
    assert job["metadata"]["name"] == "job-t1-0123456789" and job["metadata"]["namespace"] == "t1"
    assert job["metadata"]["labels"] == {JOB_UUID_LABEL: "u-1", TENANT_LABEL: "t1"}
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"] == {JOB_UUID_LABEL: "u-1", TENANT_LABEL: "t1"}
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["/bin/sh", "-c", "cp -r /src/* /dest/"]
    assert pod["spec"]["volumes"] == [
        {"name": "vol-0", "persistentVolumeClaim": {"claimName": "gluster-exam"}},
        {"name": "vol-1", "persistentVolumeClaim": {"claimName": "nfs-exam"}}]
    assert container["volumeMounts"] == [{"name": "vol-0", "mountPath": "/dest"},
                                         {"name": "vol-1", "mountPath": "/src"}]
    assert job["spec"]["ttlSecondsAfterFinished"] == 0


def test_render_keeps_template_volumes_and_labels() -> None:
    t = default_template()
    t["metadata"]["labels"] = {"team": "exam"}
    pod = t["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "vol-0", "emptyDir": {}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "vol-0", "mountPath": "/scratch"}]
    before = copy.deepcopy(t)
    job = _render(validate_template(t))
    assert t == before
    assert job["metadata"]["labels"]["team"] == "exam"
    names = [v["name"] for v in job["spec"]["template"]["spec"]["volumes"]]
    assert names == ["vol-0", "vol-0-1", "vol-1"]
    with pytest.raises(errors.InvalidInput, match=r"vols\[0\].mount: /scratch is already a mount point"):
        _render(t, [{"pvc": "a", "mount": "/scratch"}])


def test_command_placeholder_inside_a_longer_argument() -> None:
    t = default_template()
    t["spec"]["template"]["spec"]["containers"][0]["args"] = ["/bin/sh", "-c", "set -e; {}"]
    job = _render(validate_template(t), [])
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][2] == "set -e; cp -r /src/* /dest/"


def test_seed_lower_case_kind_is_accepted_as_job() -> None:
    t = default_template()
    t["kind"] = "job"
    assert validate_template(t)["kind"] == "Job"


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    t = default_template()
    node: Any = t
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return t


POD = ["spec", "template", "spec"]
C0 = [*POD, "containers", 0]


@pytest.mark.parametrize(("path", "value", "expected"), [
    (["apiVersion"], "v1", "apiVersion: must be 'batch/v1'"),
    (["kind"], "Pod", "kind: must be 'Job'"),
    (["metadata"], ..., "metadata: must be an object"),
    (["metadata", "name"], "copy-vol-job", "metadata.name: needs the name placeholder"),
    (["metadata", "name"], "job-{}", "metadata.name: needs the name placeholder"),
    (["metadata", "name"], "a-very-long-prefix-for-every-job-name-{}-{}", "does not make valid job names"),
    (["metadata", "name"], "Job-{}-{}", "does not make valid job names"),
    (["metadata", "namespace"], "other", "metadata.namespace: must not be set"),
    (["spec", "selector"], {"matchLabels": {"a": "b"}}, "spec.selector: must not be set"),
    ([*C0, "args"], ["/bin/sh", "-c", "echo hi"], "needs exactly one '{}' placeholder for the command"),
    ([*C0, "args"], ["{}", "-c", "{}"], "found 2: containers[0].args[0], containers[0].args[2]"),
    ([*POD, "containers"], [], "spec.template.spec.containers: needs at least one container"),
    ([*C0, "image"], ..., "containers[0]: needs a name and an image"),
    ([*POD, "restartPolicy"], "Always", "restartPolicy: must be Never or OnFailure"),
    ([*POD, "volumes"], [{"name": "h", "hostPath": {"path": "/etc"}}],
     'spec.template.spec.volumes[0].hostPath: violates PodSecurity "baseline:latest": hostPath volumes'),
    ([*POD, "hostNetwork"], True,
     'spec.template.spec.hostNetwork: violates PodSecurity "baseline:latest": host namespaces '
     "(hostNetwork=true)"),
    ([*POD, "hostPID"], True, "spec.template.spec.hostPID: violates PodSecurity"),
    ([*C0, "securityContext"], {"privileged": True},
     'containers[0].securityContext.privileged: violates PodSecurity "baseline:latest": privileged'),
    ([*C0, "securityContext"], {"capabilities": {"add": ["SYS_ADMIN"]}}, "non-default capabilities"),
    ([*C0, "ports"], [{"containerPort": 80, "hostPort": 80}], "containers[0].ports[0].hostPort:"),
    # the container escape of issue 10, through a tenant's template: volumes named as paths
    ([*POD, "volumes"], [{"name": "/", "emptyDir": {}}], "spec.template.spec.volumes[0].name: '/' is not"),
    ([*POD, "volumes"], [{"name": "../../../etc", "emptyDir": {}}], "volumes[0].name: '../../../etc' is not"),
    ([*POD, "volumes"], [{"name": "/etc", "emptyDir": {"medium": "Memory"}}],
     "volumes[0].name: '/etc' is not"),
    ([*POD, "volumes"], [{"name": "d", "persistentVolumeClaim": {"claimName": "../x"}}],
     "volumes[0].persistentVolumeClaim.claimName: '../x' is not"),
    ([*POD, "volumes"], [{"name": "d", "emptyDir": {}}, {"name": "d", "emptyDir": {}}],
     "volumes[1].name: 'd' is used twice"),
    ([*C0, "volumeMounts"], [{"name": "nope", "mountPath": "/x"}],
     "containers[0].volumeMounts[0].name: 'nope' names no volume of the template"),
    ([*C0, "name"], "Copy/../x", "containers[0].name: 'Copy/../x' is not"),
    (["spec", "ttlSecondsAfterFinished"], "zero", "spec.ttlSecondsAfterFinished: invalid value"),
])
def test_bad_templates_name_what_is_wrong(path: list[Any], value: Any, expected: str) -> None:
    assert expected in _refused(_with(path, value))


def test_non_object_template() -> None:
    assert "must be a JSON object" in _refused(["not", "a", "job"])
