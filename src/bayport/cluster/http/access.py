"""Authentication and authorization of one cluster's API: which token, and may it do this.

``app`` asks ``Authenticator.identify`` for the identity behind the request's bearer token (401
when there is none) and ``authorize`` whether that identity may use the request's verb on its
resource. A read-only identity (the reader token Bayport hands to project readers) may get, list
and watch, including ``pods/log``; every write answers 403 in the API server's own words, so
kubectl prints what it prints against a real cluster with a ``view`` binding. ``access_review``
answers SelfSubjectAccessReviews by the same rule, so ``kubectl auth can-i`` tells the truth.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bayport.cluster.errors import ApiError
from bayport.cluster.http.routing import Target
from bayport.cluster.identity import Identity

_READ_VERBS = frozenset({"get", "list", "watch"})
_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}
ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@dataclass(frozen=True)
class Credential:
    token: str
    identity: Identity


class Authenticator:
    """The bearer tokens a cluster accepts, each with its identity."""

    def __init__(self, credentials: Iterable[Credential]) -> None:
        self._bearers = [(f"Bearer {c.token}".encode(), c.identity) for c in credentials if c.token]

    def identify(self, authorization: bytes | None) -> Identity | None:
        if authorization is None:
            return None
        found = None
        for bearer, identity in self._bearers:
            # Compare against every token (no early exit), so timing tells nothing about which.
            if hmac.compare_digest(authorization, bearer):
                found = identity
        return found


def verb_of(method: str, target: Target, watch_flag: bool) -> str:
    """The Kubernetes authorization verb of a request (what RBAC rules name)."""
    if method in ("GET", "HEAD"):
        if target.watch or watch_flag:
            return "watch"
        return "get" if target.name is not None else "list"
    if method == "DELETE":
        return "delete" if target.name is not None else "deletecollection"
    return _VERB_BY_METHOD.get(method, method.lower())


def authorize(identity: Identity, method: str, target: Target | None, path: str,
              watch_flag: bool = False) -> None:
    """Raise 403 Forbidden unless ``identity`` may make this request."""
    if not identity.read_only:
        return
    if target is None:
        if method in ("GET", "HEAD"):
            return
        raise ApiError(403, "Forbidden", f'forbidden: User "{identity.user}" cannot '
                       f'{method.lower()} path "{path}"')
    verb = verb_of(method, target, watch_flag)
    if verb in _READ_VERBS:
        return
    raise forbidden(identity, verb, target)


def forbidden(identity: Identity, verb: str, target: Target) -> ApiError:
    """The API server's refusal: ``pods "web" is forbidden: User "u" cannot delete resource
    "pods" in API group "" in the namespace "default"``."""
    res = target.resource
    qualified = f"{res.plural}.{res.group}" if res.group else res.plural
    resource = f"{res.plural}/{target.subresource}" if target.subresource else res.plural
    subject = f'{qualified} "{target.name}"' if target.name else qualified
    if res.namespaced and target.namespace:
        scope = f'in the namespace "{target.namespace}"'
    else:
        scope = "at the cluster scope"
    details: dict[str, str] = {"kind": res.plural}
    if target.name:
        details["name"] = target.name
    if res.group:
        details["group"] = res.group
    return ApiError(403, "Forbidden", f'{subject} is forbidden: User "{identity.user}" cannot {verb} '
                    f'resource "{resource}" in API group "{res.group}" {scope}', details=details)


def access_review(identity: Identity, body: Any) -> dict[str, Any]:
    """The answered SelfSubjectAccessReview for ``body`` (what ``kubectl auth can-i`` sends)."""
    spec = body.get("spec") if isinstance(body, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    attributes = spec.get("resourceAttributes") or spec.get("nonResourceAttributes") or {}
    verb = str(attributes.get("verb") or "") if isinstance(attributes, dict) else ""
    reads = _READ_VERBS if spec.get("resourceAttributes") else frozenset({"get", "head"})
    allowed = not identity.read_only or verb in reads
    status: dict[str, Any] = {"allowed": allowed}
    if allowed and identity.read_only:
        status["reason"] = f'User "{identity.user}" may read'
    return {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
