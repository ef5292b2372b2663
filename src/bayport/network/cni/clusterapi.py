"""Reads the pod's port annotation from the cluster's Kubernetes API, waiting for it.

The controller annotates a pod moments after it is created, and the kubelet may call
us before that: instead of failing and being retried (reference 003), ADD lists the
pod and then watches it (``fieldSelector=metadata.name``) until the annotation
appears or ``portWaitSeconds`` pass, which is CNI code 11, "try again later".
Credentials come from a kubeconfig (token, client certificate, CA) or from the
network configuration's ``apiServer`` + ``token``.

Blocking ``http.client``, not httpx: the plugin is one short process per pod, and
httpx's import plus its SSL context (certifi's bundle, built even for http://) cost
~0.2 s of CPU per ADD, which a burst of pods on a small node pays in full. One list
and one watch on one connection is all it needs; YAML is imported only for a
kubeconfig. ``wait_for_binding`` runs the blocking wait on a thread for async callers.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayport.network.cni.binding import PortBinding, binding_from_annotations
from bayport.network.cni.spec import CNIError, Code, NetConf

# Connecting and each read are bounded; a watch is held open at most this long per
# request and re-listed after, so a silent proxy cannot stall an ADD.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
WATCH_SECONDS = 60
RETRY_DELAY = 0.25
MAX_BODY = 16 << 20


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
        import tempfile

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
    import yaml

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
    """``wait_for_binding_blocking`` for an event loop (tests, in-process callers)."""
    import asyncio

    return await asyncio.to_thread(wait_for_binding_blocking, access, namespace, name,
                                   pod_uid=pod_uid, timeout=timeout)


def wait_for_binding_blocking(access: ClusterAccess, namespace: str, name: str, *,
                              pod_uid: str | None, timeout: float) -> PortBinding:
    """The pod's port, as soon as the controller has annotated the pod."""
    api = _Api(access)
    path = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/pods"
    selector = f"metadata.name={name}"
    last_error = "the pod has no kuryr.org/neutron-port annotation yet"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                listed = api.get(path, {"fieldSelector": selector}, deadline)
                for pod in listed.get("items") or ():
                    if (found := _binding_of(pod, pod_uid)) is not None:
                        return found
                version = str((listed.get("metadata") or {}).get("resourceVersion", ""))
                return api.watch(path, selector, version, pod_uid, deadline)
            except _Relist:
                continue
            except TimeoutError:
                if time.monotonic() >= deadline:
                    break                    # waited the whole time on a quiet watch
                last_error = "cluster API unreachable or failing: timed out"
            except (OSError, http.client.HTTPException, _Transient) as exc:
                last_error = f"cluster API unreachable or failing: {exc!r}"
            api.close()
            time.sleep(max(0.0, min(RETRY_DELAY, deadline - time.monotonic())))
    finally:
        api.close()
    raise CNIError(Code.TRY_AGAIN_LATER,
                   f"no port for pod {namespace}/{name} after {timeout:g} s", last_error)


def _binding_of(pod: Any, pod_uid: str | None) -> PortBinding | None:
    if not isinstance(pod, dict):
        return None
    metadata = pod.get("metadata") or {}
    if pod_uid and metadata.get("uid") not in (None, pod_uid):
        return None  # an older pod of the same name; wait for ours
    return binding_from_annotations(metadata.get("annotations"))


class _Api:
    """One keep-alive connection to the API server; every socket wait ends by the deadline."""

    def __init__(self, access: ClusterAccess) -> None:
        parts = urllib.parse.urlsplit(access.server)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.verify = access.verify
        self.headers = {"Accept": "application/json", "User-Agent": "bayport-cni"}
        if access.token:
            self.headers["Authorization"] = f"Bearer {access.token}"
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _context(self) -> ssl.SSLContext:
        if isinstance(self.verify, ssl.SSLContext):
            return self.verify
        if self.verify:
            return ssl.create_default_context()
        return ssl._create_unverified_context()

    def _send(self, path: str, params: dict[str, str], deadline: float,
              read_timeout: float) -> tuple[http.client.HTTPResponse, socket.socket]:
        """The response and its socket (whose timeout the caller keeps within the deadline)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        if self._conn is None:
            timeout = min(CONNECT_TIMEOUT, remaining)
            self._conn = (http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                                      context=self._context()) if self.https
                          else http.client.HTTPConnection(self.host, self.port, timeout=timeout))
            self._conn.connect()
        conn = self._conn
        sock = conn.sock
        assert isinstance(sock, socket.socket)
        sock.settimeout(min(read_timeout, max(0.01, deadline - time.monotonic())))
        conn.request("GET", f"{self.prefix}{path}?{urllib.parse.urlencode(params)}", headers=self.headers)
        response = conn.getresponse()
        if response.status >= 400:
            body = response.read(MAX_BODY).decode(errors="replace")
            self.close()
            _raise_for_status(response.status, body)
        if response.will_close:
            self._conn = None            # http.client let go of it; the response still reads
        return response, sock

    def get(self, path: str, params: dict[str, str], deadline: float) -> dict[str, Any]:
        response, _ = self._send(path, params, deadline, READ_TIMEOUT)
        try:
            body = json.loads(response.read(MAX_BODY))
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise CNIError(Code.CLUSTER_API_REFUSED, f"unexpected answer from GET {path}")
        return body

    def watch(self, path: str, selector: str, version: str, pod_uid: str | None,
              deadline: float) -> PortBinding:
        params = {"watch": "true", "fieldSelector": selector, "timeoutSeconds": str(WATCH_SECONDS)}
        if version:
            params["resourceVersion"] = version
        response, sock = self._send(path, params, deadline, WATCH_SECONDS + 10)
        try:
            while True:
                sock.settimeout(min(WATCH_SECONDS + 10, max(0.01, deadline - time.monotonic())))
                line = response.readline(MAX_BODY)
                if not line:
                    raise _Relist
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                kind, obj = event.get("type"), event.get("object")
                if kind == "ERROR":
                    raise _Relist
                if kind in ("ADDED", "MODIFIED") and (found := _binding_of(obj, pod_uid)) is not None:
                    return found
        finally:
            self.close()                 # a watch's connection is never reused


def _raise_for_status(status: int, body: str) -> None:
    if status < 400:
        return
    if status == 429 or status >= 500:
        raise _Transient(f"cluster API answered {status}")
    raise CNIError(Code.CLUSTER_API_REFUSED, f"cluster API refused the request ({status})", body[:500])
