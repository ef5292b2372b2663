"""Reads the pod's port annotation from the cluster's Kubernetes API, waiting for it.

The controller annotates a pod moments after it is created, and the kubelet may call
us before that: instead of failing and being retried (reference 003), ADD lists the
pod and then watches it (``fieldSelector=metadata.name``) until the annotation
appears or ``portWaitSeconds`` pass, which is CNI code 11, "try again later".
Credentials come from a kubeconfig (token, client certificate, CA) or from the
network configuration's ``apiServer`` + ``token``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from bayport.network.cni.binding import PortBinding, binding_from_annotations
from bayport.network.cni.spec import CNIError, Code, NetConf

# Connecting and each read are bounded; a watch is held open at most this long per
# request and re-listed after, so a silent proxy cannot stall an ADD.
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
WATCH_SECONDS = 60
RETRY_DELAY = 0.25


@dataclass(frozen=True, slots=True)
class ClusterAccess:
    server: str
    token: str | None
    verify: ssl.SSLContext | bool


def _config_error(msg: str, details: str = "") -> CNIError:
    return CNIError(Code.INVALID_NETWORK_CONFIG, msg, details)


def _named(items: Any, name: str, kind: str) -> dict[str, Any]:
    for item in items or ():
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(kind), dict):
            return dict(item[kind])
    raise _config_error(f"kubeconfig has no {kind} named {name!r}")


def _file_or_data(entry: dict[str, Any], key: str, base: Path) -> tuple[Path | None, bytes | None]:
    if entry.get(f"{key}-data"):
        return None, base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(str(entry[key]))
        return (path if path.is_absolute() else base / path), None
    return None, None


def _ssl_context(cluster: dict[str, Any], user: dict[str, Any], base: Path) -> ssl.SSLContext:
    ca_file, ca_data = _file_or_data(cluster, "certificate-authority", base)
    context = ssl.create_default_context(
        cafile=str(ca_file) if ca_file else None,
        cadata=ca_data.decode() if ca_data else None)
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert_file, cert_data = _file_or_data(user, "client-certificate", base)
    key_file, key_data = _file_or_data(user, "client-key", base)
    if cert_file or cert_data:
        with tempfile.TemporaryDirectory(prefix="bayport-cni-") as tmp:
            if cert_data is not None:
                cert_file = Path(tmp) / "cert.pem"
                cert_file.write_bytes(cert_data)
            if key_data is not None:
                key_file = Path(tmp) / "key.pem"
                key_file.write_bytes(key_data)
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context


def load_kubeconfig(path: Path) -> ClusterAccess:
    """Server, bearer token and TLS settings of the kubeconfig's current context."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CNIError(Code.IO_FAILURE, f"cannot read kubeconfig {path}", str(exc)) from exc
    except yaml.YAMLError as exc:
        raise CNIError(Code.DECODING_FAILURE, f"kubeconfig {path} is not YAML", str(exc)) from exc
    if not isinstance(doc, dict) or not doc.get("current-context"):
        raise _config_error(f"kubeconfig {path} has no current-context")
    context = _named(doc.get("contexts"), str(doc["current-context"]), "context")
    cluster = _named(doc.get("clusters"), str(context.get("cluster")), "cluster")
    user = _named(doc.get("users"), str(context.get("user")), "user") if context.get("user") else {}
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("http://", "https://")):
        raise _config_error(f"kubeconfig {path}: cluster server must be an http(s) URL")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = Path(str(user["tokenFile"])).read_text().strip()
        except OSError as exc:
            raise CNIError(Code.IO_FAILURE, "cannot read the kubeconfig's tokenFile", str(exc)) from exc
    try:
        verify: ssl.SSLContext | bool = (_ssl_context(cluster, user, path.parent)
                                         if server.startswith("https://") else True)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise _config_error(f"kubeconfig {path}: unusable TLS material", str(exc)) from exc
    return ClusterAccess(server=server.rstrip("/"), token=str(token) if token else None, verify=verify)


def cluster_access(conf: NetConf) -> ClusterAccess:
    if conf.kubeconfig is not None:
        return load_kubeconfig(conf.kubeconfig)
    if conf.api_server is None or not conf.api_server.startswith(("http://", "https://")):
        raise _config_error("apiServer must be an http(s) URL")
    return ClusterAccess(server=conf.api_server.rstrip("/"), token=conf.token, verify=True)


class _Relist(Exception):
    """The watch ended or its resourceVersion expired (410 Gone): list again."""


class _Transient(Exception):
    """The API server is overloaded or failing (429, 5xx): retry until the deadline."""


async def wait_for_binding(access: ClusterAccess, namespace: str, name: str, *,
                           pod_uid: str | None, timeout: float) -> PortBinding:
    """The pod's port, as soon as the controller has annotated the pod."""
    headers = {"Accept": "application/json"}
    if access.token:
        headers["Authorization"] = f"Bearer {access.token}"
    path = f"/api/v1/namespaces/{namespace}/pods"
    selector = f"metadata.name={name}"
    last_error = "the pod has no kuryr.org/neutron-port annotation yet"
    async with httpx.AsyncClient(base_url=access.server, headers=headers, verify=access.verify,
                                 timeout=HTTP_TIMEOUT) as client:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        listed = await _get(client, path, {"fieldSelector": selector})
                        for pod in listed.get("items") or ():
                            if (found := _binding_of(pod, pod_uid)) is not None:
                                return found
                        version = str((listed.get("metadata") or {}).get("resourceVersion", ""))
                        return await _watch(client, path, selector, version, pod_uid)
                    except _Relist:
                        continue
                    except (httpx.TransportError, _Transient) as exc:
                        last_error = f"cluster API unreachable or failing: {exc!r}"
                        await asyncio.sleep(RETRY_DELAY)
        except TimeoutError:
            raise CNIError(Code.TRY_AGAIN_LATER,
                           f"no port for pod {namespace}/{name} after {timeout:g} s", last_error) from None


def _binding_of(pod: Any, pod_uid: str | None) -> PortBinding | None:
    if not isinstance(pod, dict):
        return None
    metadata = pod.get("metadata") or {}
    if pod_uid and metadata.get("uid") not in (None, pod_uid):
        return None  # an older pod of the same name; wait for ours
    return binding_from_annotations(metadata.get("annotations"))


async def _get(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> dict[str, Any]:
    response = await client.get(path, params=params)
    _raise_for_status(response.status_code, response.text)
    body = response.json()
    if not isinstance(body, dict):
        raise CNIError(Code.CLUSTER_API_REFUSED, f"unexpected answer from GET {path}")
    return body


async def _watch(client: httpx.AsyncClient, path: str, selector: str, version: str,
                 pod_uid: str | None) -> PortBinding:
    params = {"watch": "true", "fieldSelector": selector, "timeoutSeconds": str(WATCH_SECONDS)}
    if version:
        params["resourceVersion"] = version
    async with client.stream("GET", path, params=params,
                             timeout=httpx.Timeout(WATCH_SECONDS + 10, connect=5.0)) as response:
        if response.status_code >= 400:
            _raise_for_status(response.status_code, (await response.aread()).decode(errors="replace"))
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind, obj = event.get("type"), event.get("object")
            if kind == "ERROR":
                raise _Relist
            if kind in ("ADDED", "MODIFIED") and (found := _binding_of(obj, pod_uid)) is not None:
                return found
    raise _Relist


def _raise_for_status(status: int, body: str) -> None:
    if status < 400:
        return
    if status == 429 or status >= 500:
        raise _Transient(f"cluster API answered {status}")
    raise CNIError(Code.CLUSTER_API_REFUSED, f"cluster API refused the request ({status})", body[:500])
