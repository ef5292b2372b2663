"""Request bodies. ``extra="forbid"`` everywhere: an unknown field is a 400 naming it,
never silently dropped. Numeric strings are coerced, as python-magnumclient sends them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Name = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
ShortStr = Annotated[str, StringConstraints(max_length=255)]
DRIVERS = ("local", "heat", "kubeconfig")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Labels carry driver settings, a base64 kubeconfig among them (a few KiB with certificates);
# these bounds leave room for that and keep one template's row, and every listing, small.
MAX_LABELS = 100
MAX_LABEL_VALUE = 64 * 1024
MAX_LABELS_TOTAL = 256 * 1024


def _labels(value: object) -> object:
    if value is None:
        return {}
    if isinstance(value, dict):
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels are accepted, not {len(value)}")
        bad = [k for k in value if not isinstance(k, str) or not 0 < len(k) <= 255]
        if bad:
            raise ValueError(f"label keys must be strings of 1 to 255 characters: {bad[:3]}")
        out = {k: str(v) for k, v in value.items()}
        for key, text in out.items():
            if len(text) > MAX_LABEL_VALUE:
                raise ValueError(f"the value of label {key!r} is {len(text)} characters; at most "
                                 f"{MAX_LABEL_VALUE} are accepted")
        total = sum(len(k) + len(v) for k, v in out.items())
        if total > MAX_LABELS_TOTAL:
            raise ValueError(f"labels hold {total} characters in all; at most {MAX_LABELS_TOTAL} "
                             "are accepted")
        return out
    return value


class BayModelCreate(Strict):
    name: Name | None = None
    coe: Literal["kubernetes"] = "kubernetes"
    driver: Literal["local", "heat", "kubeconfig"] = "local"
    image_id: ShortStr | None = None
    flavor_id: ShortStr | None = None
    master_flavor_id: ShortStr | None = None
    keypair_id: ShortStr | None = None
    external_network_id: ShortStr | None = None
    fixed_network: ShortStr | None = None
    fixed_subnet: ShortStr | None = None
    dns_nameserver: ShortStr | None = None
    docker_volume_size: Annotated[int, Field(ge=1, le=16384)] | None = None
    network_driver: Literal["bayport", "flannel", "calico", "none"] | None = None
    volume_driver: ShortStr | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    public: bool = False
    hidden: bool = False
    tls_disabled: bool = False
    master_lb_enabled: bool = False

    _norm_labels = field_validator("labels", mode="before")(_labels)


BAYMODEL_UPDATABLE = set(BayModelCreate.model_fields) - {"coe"}
BAYMODEL_UPDATABLE_IN_USE = {"name", "public", "hidden"}

NodeCount = Annotated[int, Field(ge=1, le=1000)]
MasterCount = Annotated[int, Field(ge=1, le=7)]
Timeout = Annotated[int, Field(ge=0, le=10080)]


class BayCreate(Strict):
    """POST /v1/bays, the seed body of reference 001 included."""

    name: Name | None = None
    baymodel_id: Name
    node_count: NodeCount = 1
    master_count: MasterCount = 1
    discovery_url: ShortStr | None = None
    bay_create_timeout: Timeout | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    _norm_labels = field_validator("labels", mode="before")(_labels)


class ClusterCreate(Strict):
    """POST /v1/clusters, the current Magnum vocabulary."""

    name: Name | None = None
    cluster_template_id: Name
    node_count: NodeCount = 1
    master_count: MasterCount = 1
    discovery_url: ShortStr | None = None
    create_timeout: Timeout | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    keypair: ShortStr | None = None

    _norm_labels = field_validator("labels", mode="before")(_labels)


class TokenCreate(Strict):
    project: Annotated[str, StringConstraints(min_length=1, max_length=64,
                                              pattern=r"^[A-Za-z0-9_.-]+$")]
    user: Name
    role: Literal["admin", "member", "reader"] = "member"
    description: ShortStr | None = None
