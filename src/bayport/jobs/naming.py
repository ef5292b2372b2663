"""Tenant ids (which are namespace names) and job names (``job-{tenant}-{hash}``).

A tenant id is a DNS-1123 label, as a namespace name must be, and short enough that
the job names made from it stay valid: a Job's name is also the value of its pods'
``job-name`` label, so it may have at most 63 characters.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from bayport import errors

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
HASH_LEN = 10        # 40 random bits; the (tenant, name) unique index catches the rare repeat
JOB_NAME_MAX = 63    # a label value: the job controller labels pods with job-name=<name>
# "job-" + id + "-" + hash must fit JOB_NAME_MAX.
TENANT_ID_MAX = JOB_NAME_MAX - len("job--") - HASH_LEN
RESERVED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


def new_tenant_id() -> str:
    """A fresh id shaped like the seed's MongoDB ObjectID: 24 lower-case hex digits."""
    return secrets.token_hex(12)


def check_tenant_id(value: str, *, field: str = "id") -> str:
    """``value`` if it can name a tenant's namespace; InvalidInput (400) saying why not."""
    if not value or len(value) > TENANT_ID_MAX or not DNS1123_LABEL.match(value):
        raise errors.InvalidInput(
            f"{field}: {value!r} is not a valid tenant id: it names the tenant's namespace, so it must "
            f"be lower-case letters, digits and '-', start and end with a letter or digit, and have at "
            f"most {TENANT_ID_MAX} characters (job names job-<id>-<hash> must fit 63)", field=field)
    if value in RESERVED_NAMESPACES or value.startswith("kube-"):
        raise errors.InvalidInput(f"{field}: {value!r} is a namespace the cluster reserves for itself",
                                  field=field)
    return value


def job_hash(job_uuid: str) -> str:
    """The short, per-job part of a job's name, derived from its uuid."""
    return hashlib.sha256(job_uuid.encode()).hexdigest()[:HASH_LEN]


def render_name(pattern: str, tenant_id: str, job_uuid: str) -> str:
    """``pattern`` (the template's ``job-{}-{}``) with the tenant id, then the job's hash."""
    return pattern.replace("{}", tenant_id, 1).replace("{}", job_hash(job_uuid), 1)


def is_claim_name(value: str) -> bool:
    """A PersistentVolumeClaim name: a DNS-1123 subdomain."""
    return 0 < len(value) <= 253 and bool(DNS1123_SUBDOMAIN.match(value))
