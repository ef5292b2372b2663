"""The four CNI commands, as the blocking ``execute`` the thin ``main`` calls (``run`` is the
same on a thread, for tests and other event-loop callers).

ADD waits for the controller's port annotation (``clusterapi``), then binds the pod
to it (``plumbing``) and answers with the CNI result; DEL unbinds without asking the
cluster anything, so it works even when the pod or the API is gone; CHECK compares
the namespace with the previous result (or the annotation); VERSION lists versions.
Blocking, stdlib-only code: the executable never imports asyncio (see ``clusterapi``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any

from bayport.network.cni import clusterapi, plumbing
from bayport.network.cni.binding import PortBinding
from bayport.network.cni.spec import (
    CURRENT_VERSION,
    CniEnv,
    CNIError,
    Code,
    NetConf,
    decode_json,
    parse_command,
    parse_env,
    parse_netconf,
    requested_version,
    version_result,
)


def add_result(conf: NetConf, env: CniEnv, binding: PortBinding,
               attached: plumbing.Attached) -> dict[str, Any]:
    interfaces: list[dict[str, Any]] = []
    if attached.bridge:
        interfaces.append({"name": attached.bridge, "mac": attached.bridge_mac})
    interfaces.append({"name": attached.host_ifname, "mac": attached.host_mac})
    interfaces.append({"name": env.ifname, "mac": binding.mac, "sandbox": env.netns})
    ip: dict[str, Any] = {"address": binding.cidr_address, "interface": len(interfaces) - 1}
    if binding.gateway:
        ip["gateway"] = binding.gateway
    if conf.cni_version != CURRENT_VERSION:
        ip["version"] = str(binding.version)  # required before 1.0.0
    result: dict[str, Any] = {"cniVersion": conf.cni_version, "interfaces": interfaces, "ips": [ip]}
    if binding.gateway:
        result["routes"] = [{"dst": binding.default_route, "gw": binding.gateway}]
    result["dns"] = {"nameservers": list(binding.dns_nameservers)} if binding.dns_nameservers else {}
    return result


def _binding(conf: NetConf, env: CniEnv) -> PortBinding:
    return clusterapi.wait_for_binding_blocking(
        clusterapi.cluster_access(conf), env.pod_namespace, env.pod_name, pod_uid=env.pod_uid,
        timeout=conf.port_wait_seconds)


def cmd_add(conf: NetConf, env: CniEnv) -> dict[str, Any]:
    if not os.path.exists(env.netns):  # fail now, not after waiting for the annotation
        raise CNIError(Code.UNKNOWN_CONTAINER, f"network namespace {env.netns} does not exist")
    binding = _binding(conf, env)
    attached = plumbing.attach(env.container_id, env.netns, env.ifname, binding,
                                     bridge=conf.bridge, is_gateway=conf.is_gateway, mtu=conf.mtu)
    return add_result(conf, env, binding, attached)


def cmd_del(conf: NetConf, env: CniEnv) -> None:
    plumbing.detach(env.container_id, env.netns, env.ifname)


def _expected_from_prev_result(prev: Mapping[str, Any], ifname: str) -> dict[str, Any]:
    """MAC, address and gateway of ``ifname`` in a previous ADD result."""
    try:
        interfaces = prev.get("interfaces") or []
        position = next(i for i, f in enumerate(interfaces)
                        if f.get("name") == ifname and f.get("sandbox"))
        ip = next(i for i in prev.get("ips") or [] if i.get("interface") == position)
        interface = ipaddress.ip_interface(str(ip["address"]))
        return {"mac": str(interfaces[position]["mac"]), "address": str(interface.ip),
                "prefixlen": interface.network.prefixlen, "gateway": ip.get("gateway"),
                "version": interface.version}
    except (StopIteration, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CNIError(Code.INVALID_NETWORK_CONFIG,
                       f"prevResult does not describe interface {ifname}", repr(exc)) from exc


def cmd_check(conf: NetConf, env: CniEnv) -> None:
    if conf.prev_result is not None:
        expected = _expected_from_prev_result(conf.prev_result, env.ifname)
    else:
        if "K8S_POD_NAMESPACE" not in env.args or "K8S_POD_NAME" not in env.args:
            raise CNIError(Code.INVALID_ENVIRONMENT,
                           "CHECK without prevResult needs K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS")
        binding = _binding(conf, env)
        expected = {"mac": binding.mac, "address": binding.address, "prefixlen": binding.prefixlen,
                    "gateway": binding.gateway, "version": binding.version}
    plumbing.verify(env.container_id, env.netns, env.ifname, bridge=conf.bridge, **expected)


def _version_hint(stdin: bytes) -> str:
    """The configuration's cniVersion for the error object, if it has a usable one."""
    try:
        return requested_version(decode_json(stdin))
    except CNIError:
        return CURRENT_VERSION


async def run(environ: Mapping[str, str], stdin: bytes) -> tuple[int, dict[str, Any] | None]:
    """``execute`` on a thread, so an event loop (a test's fake API server) keeps serving."""
    import asyncio

    return await asyncio.to_thread(execute, environ, stdin)


def execute(environ: Mapping[str, str], stdin: bytes) -> tuple[int, dict[str, Any] | None]:
    """Exit code and the JSON document to print (a result, an error, or nothing)."""
    version = _version_hint(stdin)
    try:
        command = parse_command(environ)
        if command == "VERSION":
            doc = decode_json(stdin) if stdin.strip() else {}
            return 0, version_result(str(doc.get("cniVersion") or CURRENT_VERSION))
        env = parse_env(environ)
        conf = parse_netconf(stdin)
        if command == "ADD":
            return 0, cmd_add(conf, env)
        if command == "DEL":
            cmd_del(conf, env)
        else:
            cmd_check(conf, env)
        return 0, None
    except CNIError as exc:
        return 1, exc.to_dict(version)
    except Exception as exc:  # every failure must still reach the runtime as a CNI error
        return 1, CNIError(Code.INTERNAL, f"unexpected error: {exc}", repr(exc)).to_dict(version)
