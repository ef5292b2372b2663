"""Tenant ids, job names and the checks on {cmd, vols} that answer 400 before anything exists."""

from __future__ import annotations

import re

import pytest

from bayport import errors
from bayport.jobs.naming import (
    TENANT_ID_MAX,
    check_tenant_id,
    job_hash,
    new_tenant_id,
    render_name,
)
from bayport.jobs.submission import check_submission, request_hash


def test_fresh_tenant_ids_look_like_object_ids() -> None:
    ids = {new_tenant_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) and check_tenant_id(i) == i for i in ids)


@pytest.mark.parametrize("bad", ["", "Tenant", "a_b", "-ab", "ab-", "a" * (TENANT_ID_MAX + 1), "a.b"])
def test_tenant_ids_must_be_namespace_names(bad: str) -> None:
    with pytest.raises(errors.InvalidInput, match="is not a valid tenant id"):
        check_tenant_id(bad)


@pytest.mark.parametrize("reserved", ["default", "kube-system", "kube-anything"])
def test_cluster_namespaces_are_reserved(reserved: str) -> None:
    with pytest.raises(errors.InvalidInput, match="reserves for itself"):
        check_tenant_id(reserved)


def test_job_names_are_unique_short_and_valid() -> None:
    tenant = "t" * TENANT_ID_MAX
    names = {render_name("job-{}-{}", tenant, f"uuid-{i}") for i in range(1000)}
    assert len(names) == 1000
    assert all(len(n) <= 63 and n.startswith(f"job-{tenant}-") for n in names)
    assert render_name("job-{}-{}", "abc", "u") == f"job-abc-{job_hash('u')}"


def test_a_good_request_is_normalised() -> None:
    cmd, vols = check_submission("cp -r /src/* /dest/", [{"pvc": "gluster-exam", "mount": "/dest/"},
                                                         {"pvc": "nfs-exam", "mount": "//src/./x/.."}])
    assert cmd == "cp -r /src/* /dest/"
    assert vols == [{"pvc": "gluster-exam", "mount": "/dest"}, {"pvc": "nfs-exam", "mount": "/src"}]


@pytest.mark.parametrize(("cmd", "vols", "expected"), [
    ("", [], "cmd: must not be empty"),
    ("   ", [], "cmd: must not be empty"),
    ("ls", [{"pvc": "a", "mount": "data"}], "vols[0].mount: 'data' is not an absolute path"),
    ("ls", [{"pvc": "a", "mount": "/"}], "vols[0].mount: a claim cannot be mounted over"),
    ("ls", [{"pvc": "a", "mount": "/d"}, {"pvc": "b", "mount": "/d/"}],
     "vols[1].mount: /d collides with vols[0].mount"),
    ("ls", [{"pvc": "Bad_Name", "mount": "/d"}], "vols[0].pvc: 'Bad_Name' is not a valid"),
])
def test_bad_requests_name_the_entry(cmd: str, vols: list[dict[str, str]], expected: str) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        check_submission(cmd, vols)
    assert expected in caught.value.detail


def test_request_hash_ignores_key_order_but_not_content() -> None:
    a = request_hash({"tenant": "t", "cmd": "ls", "vols": [{"pvc": "a", "mount": "/a"}]})
    b = request_hash({"vols": [{"mount": "/a", "pvc": "a"}], "cmd": "ls", "tenant": "t"})
    assert a == b
    assert a != request_hash({"tenant": "t", "cmd": "ls -l", "vols": [{"pvc": "a", "mount": "/a"}]})
