"""The CNI 1.0.0 contract of ``bayport-cni``: the environment and network configuration
it is called with, the error object and codes it answers with, and the result shapes.

Parsing happens here, before anything touches the cluster API (``podsource``) or the
kernel (``plumbing``); ``commands`` ties them together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

CURRENT_VERSION = "1.0.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
PLUGIN_TYPE = "bayport-cni"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")
DEFAULT_PORT_WAIT_SECONDS = 30.0
IFNAME_MAX = 15  # IFNAMSIZ - 1
_IFNAME = re.compile(r"^[^/\s:]{1,15}$")


class Code(IntEnum):
    """Error codes: 1-99 from the CNI specification, 100 and up our own."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    TRY_AGAIN_LATER = 11
    CLUSTER_API_REFUSED = 100
    BAD_PORT_ANNOTATION = 101
    INTERFACE_SETUP_FAILED = 102
    CHECK_FAILED = 103
    INTERNAL = 199


class CNIError(Exception):
    """Printed as the CNI error object on stdout; the process exits non-zero."""

    def __init__(self, code: Code, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str = CURRENT_VERSION) -> dict[str, Any]:
        return {"cniVersion": cni_version, "code": int(self.code), "msg": self.msg,
                "details": self.details}


@dataclass(frozen=True, slots=True)
class CniEnv:
    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    path: str

    @property
    def pod_namespace(self) -> str:
        return self.args["K8S_POD_NAMESPACE"]

    @property
    def pod_name(self) -> str:
        return self.args["K8S_POD_NAME"]

    @property
    def pod_uid(self) -> str | None:
        return self.args.get("K8S_POD_UID") or None


def parse_command(environ: Mapping[str, str]) -> str:
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CNIError(Code.INVALID_ENVIRONMENT, f"CNI_COMMAND must be one of {', '.join(COMMANDS)}",
                       f"CNI_COMMAND={command!r}")
    return command


def parse_env(environ: Mapping[str, str]) -> CniEnv:
    """The CNI_* variables of an ADD, DEL or CHECK, each required one checked."""
    command = parse_command(environ)
    required = ["CNI_CONTAINERID", "CNI_IFNAME"]
    if command in ("ADD", "CHECK"):
        required.append("CNI_NETNS")
    missing = [name for name in required if not environ.get(name)]
    if missing:
        raise CNIError(Code.INVALID_ENVIRONMENT, f"missing environment variables: {', '.join(missing)}",
                       f"CNI_COMMAND={command}")
    ifname = environ["CNI_IFNAME"]
    if not _IFNAME.match(ifname):
        raise CNIError(Code.INVALID_ENVIRONMENT,
                       f"CNI_IFNAME {ifname!r} is not a valid interface name (1-{IFNAME_MAX} "
                       "characters, no '/', ':' or spaces)")
    args = parse_cni_args(environ.get("CNI_ARGS", ""))
    if command == "ADD":
        absent = [k for k in ("K8S_POD_NAMESPACE", "K8S_POD_NAME") if not args.get(k)]
        if absent:
            raise CNIError(Code.INVALID_ENVIRONMENT, f"CNI_ARGS lacks {', '.join(absent)}",
                           f"CNI_ARGS={environ.get('CNI_ARGS', '')!r}")
    return CniEnv(command=command, container_id=environ["CNI_CONTAINERID"],
                  netns=environ.get("CNI_NETNS", ""), ifname=ifname, args=args,
                  path=environ.get("CNI_PATH", ""))


def parse_cni_args(raw: str) -> dict[str, str]:
    """``K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx;IgnoreUnknown=1`` as a dict."""
    args: dict[str, str] = {}
    for pair in filter(None, raw.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CNIError(Code.INVALID_ENVIRONMENT, f"CNI_ARGS item {pair!r} is not KEY=VALUE",
                           f"CNI_ARGS={raw!r}")
        args[key] = value
    return args


@dataclass(frozen=True, slots=True)
class NetConf:
    cni_version: str
    name: str
    kubeconfig: Path | None
    api_server: str | None
    token: str | None
    bridge: str | None
    is_gateway: bool
    port_wait_seconds: float
    mtu: int | None
    prev_result: dict[str, Any] | None


def decode_json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CNIError(Code.DECODING_FAILURE, "network configuration on stdin is not JSON",
                       str(exc)) from exc
    if not isinstance(doc, dict):
        raise CNIError(Code.DECODING_FAILURE, "network configuration must be a JSON object")
    return doc


def requested_version(doc: Mapping[str, Any]) -> str:
    version = doc.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CNIError(Code.INVALID_NETWORK_CONFIG, "network configuration lacks cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(Code.INCOMPATIBLE_VERSION, f"cniVersion {version} is not supported",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    return version


def parse_netconf(raw: bytes) -> NetConf:
    doc = decode_json(raw)
    version = requested_version(doc)

    def invalid(msg: str) -> CNIError:
        return CNIError(Code.INVALID_NETWORK_CONFIG, msg)

    if doc.get("type") != PLUGIN_TYPE:
        raise invalid(f"network configuration type must be {PLUGIN_TYPE!r}, not {doc.get('type')!r}")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise invalid("network configuration lacks a name")
    kubeconfig, api_server, token = doc.get("kubeconfig"), doc.get("apiServer"), doc.get("token")
    if not kubeconfig and not api_server:
        raise invalid("give either kubeconfig (a path) or apiServer (+ token)")
    for key, value in (("kubeconfig", kubeconfig), ("apiServer", api_server), ("token", token)):
        if value is not None and not isinstance(value, str):
            raise invalid(f"{key} must be a string")
    bridge = doc.get("bridge")
    if bridge is not None and (not isinstance(bridge, str) or not _IFNAME.match(bridge)):
        raise invalid(f"bridge {bridge!r} is not a valid interface name (at most {IFNAME_MAX} characters)")
    wait = doc.get("portWaitSeconds", DEFAULT_PORT_WAIT_SECONDS)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait <= 0:
        raise invalid("portWaitSeconds must be a positive number")
    mtu = doc.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535):
        raise invalid("mtu must be an integer between 68 and 65535")
    is_gateway = doc.get("isGateway", False)
    if not isinstance(is_gateway, bool):
        raise invalid("isGateway must be true or false")
    prev = doc.get("prevResult")
    return NetConf(cni_version=version, name=name,
                   kubeconfig=Path(kubeconfig) if kubeconfig else None,
                   api_server=api_server or None, token=token or None, bridge=bridge,
                   is_gateway=is_gateway, port_wait_seconds=float(wait), mtu=mtu,
                   prev_result=prev if isinstance(prev, dict) else None)


def version_result(cni_version: str = CURRENT_VERSION) -> dict[str, Any]:
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}
