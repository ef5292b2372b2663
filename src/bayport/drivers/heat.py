"""The heat driver: a bay is a Heat stack of one template (master(s) + N minions) on OpenStack.

The conductor calls ``create``/``resize``/``delete`` within the bay's deadline; each
finds the bay's stack first (by the recorded ``stack_id``, else by its deterministic
name), so a redelivered message or a takeover picks up the stack that is already there
instead of making a second one. Stack states map onto the bay's: ``*_COMPLETE`` is
success, ``*_FAILED`` a ``PermanentError`` carrying Heat's ``stack_status_reason``,
anything Heat or the network cannot answer right now a ``TemporaryError``. The REST
calls live in ``heat_api.py``, authentication in ``openstack.py``, the template and
node scripts in ``templates/``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
import re
from importlib import resources
from typing import Any

from bayport import errors
from bayport.config import Settings
from bayport.drivers.base import Credentials, Driver, ProvisionResult
from bayport.drivers.heat_api import HeatAPI, Stack
from bayport.drivers.openstack import OpenStackSession, OpenStackSettings
from bayport.objects.bay import Bay, BayModel

log = logging.getLogger(__name__)

MAIN_TEMPLATE = "kubecluster.yaml"
# Sent in the request's "files": nested templates by type name, node scripts by get_file name.
TEMPLATE_FILES = ("network.yaml", "kubemaster.yaml", "kubeminion.yaml", "install-kubeadm.sh",
                  "master-init.sh", "master-join.sh", "minion-join.sh")
REQUIRED_BAYMODEL_FIELDS = ("image_id", "keypair_id", "external_network_id")
# Right after a PATCH or DELETE, Heat may still show the stack's previous state for a moment;
# an unchanged terminal state is believed only after this many further looks.
STALE_POLLS = 3
STACK_NAME_MAX = 200
# Outcomes that are not a working cluster even though Heat calls them COMPLETE.
NOT_A_CLUSTER = ("DELETE", "ROLLBACK", "SUSPEND")


@functools.cache
def load_template() -> tuple[str, dict[str, str]]:
    """The cluster template and the files it refers to, as text, read once.

    Sent as text, Heat parses the YAML itself (a client-side parse would, for one, turn
    ``heat_template_version: 2018-08-31`` into a date).
    """
    folder = resources.files("bayport.drivers") / "templates"
    template = folder.joinpath(MAIN_TEMPLATE).read_text(encoding="utf-8")
    files = {name: folder.joinpath(name).read_text(encoding="utf-8") for name in TEMPLATE_FILES}
    return template, files


def stack_name(bay: Bay) -> str:
    """``<bay name>-<short uuid>``, within Heat's rule ``[a-zA-Z][a-zA-Z0-9_.-]*``."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", bay.name or "").strip("-.") or "bay"
    if not base[0].isalpha():
        base = f"bay-{base}"
    return f"{base[:STACK_NAME_MAX]}-{bay.uuid[:8]}"


def stack_parameters(bay: Bay, baymodel: BayModel) -> dict[str, Any]:
    """The template's parameters for this bay; unset ones are left to the template's defaults."""
    labels = {**baymodel.labels, **bay.labels}
    values: dict[str, Any] = {
        "cluster_uuid": bay.uuid,
        "image_id": baymodel.image_id,
        "flavor_id": baymodel.flavor_id,
        "master_flavor_id": baymodel.master_flavor_id,
        "keypair_id": baymodel.keypair_id,
        "external_network_id": baymodel.external_network_id,
        "fixed_network": baymodel.fixed_network,
        "fixed_subnet": baymodel.fixed_subnet,
        "dns_nameserver": baymodel.dns_nameserver,
        "docker_volume_size": baymodel.docker_volume_size,
        "number_of_masters": bay.master_count,
        "number_of_minions": bay.node_count,
        "discovery_url": bay.discovery_url,
        "kube_version": labels.get("kube_tag"),
        "fixed_network_cidr": labels.get("fixed_network_cidr"),
        "pod_network_cidr": labels.get("pod_network_cidr"),
    }
    return {key: value for key, value in values.items() if value not in (None, "")}


def check_baymodel(baymodel: BayModel) -> None:
    if baymodel.coe != "kubernetes":
        raise errors.PermanentError(f"the heat driver builds kubernetes bays, not {baymodel.coe}")
    missing = [name for name in REQUIRED_BAYMODEL_FIELDS if not getattr(baymodel, name)]
    if missing:
        raise errors.PermanentError(f"the heat driver needs the baymodel's {', '.join(missing)}")
    if bool(baymodel.fixed_network) != bool(baymodel.fixed_subnet):
        raise errors.PermanentError(
            "set both fixed_network and fixed_subnet to use an existing network, or neither to "
            "have one created for the bay")


def ca_data_of(value: Any) -> str | None:
    """The cluster CA as kubeconfig's certificate-authority-data (base64 of the PEM).

    The template's ``ca_cert`` output is a wait condition's data, ``{"ca": "<base64 PEM>"}``;
    a template may also output the base64 or the PEM itself.
    """
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, dict):
        value = value.get("ca") or next(iter(value.values()), None)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return base64.b64encode(text.encode()).decode()
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return text


def _addresses(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value) if value.startswith("[") else [value]
    return [str(v) for v in value or [] if v]


def _fingerprint(stack: Stack) -> tuple[str, str, str | None]:
    return stack.status, stack.reason, stack.updated_time


class HeatDriver(Driver):
    name = "heat"

    def __init__(self, settings: Settings, openstack: OpenStackSettings | None = None) -> None:
        super().__init__(settings)
        self.openstack = openstack if openstack is not None else OpenStackSettings()
        self.session = OpenStackSession(self.openstack)
        self.heat = HeatAPI(self.session)

    @property
    def poll_interval(self) -> float:
        return self.openstack.heat_poll_interval

    async def _find(self, bay: Bay) -> Stack | None:
        if bay.stack_id:
            stack = await self.heat.find(bay.stack_id)
            if stack is not None:
                return stack
        return await self.heat.find(stack_name(bay))

    async def _settle(self, stack: Stack) -> Stack | None:
        """Poll while the stack is in progress; None once Heat no longer knows it."""
        current: Stack | None = stack
        while current is not None and current.state == "IN_PROGRESS":
            await asyncio.sleep(self.poll_interval)
            current = await self.heat.show(current)
        return current

    async def _after_request(self, before: Stack) -> Stack | None:
        """Poll after a PATCH/DELETE until the stack shows that request's outcome."""
        seen_progress, looks = False, 0
        while True:
            await asyncio.sleep(self.poll_interval)
            looks += 1
            current = await self.heat.show(before)
            if current is None:
                return None
            if current.state == "IN_PROGRESS":
                seen_progress = True
            elif seen_progress or looks > STALE_POLLS or _fingerprint(current) != _fingerprint(before):
                return current

    @staticmethod
    def _failure(stack: Stack, doing: str) -> errors.PermanentError:
        reason = stack.reason or "Heat gave no reason"
        return errors.PermanentError(f"{doing}: Heat stack {stack.name} is {stack.status}: {reason}")

    def _result(self, stack: Stack) -> ProvisionResult:
        outputs = stack.outputs
        api_address = outputs.get("api_address")
        if not isinstance(api_address, str) or not api_address:
            detail = "; ".join(f"{k}: {v}" for k, v in stack.output_errors.items())
            raise errors.PermanentError(
                f"Heat stack {stack.name} is {stack.status} but has no api_address output"
                + (f" ({detail})" if detail else ""))
        token = outputs.get("admin_token")
        credentials = Credentials(
            server=api_address, token=str(token) if token else None,
            ca_data=ca_data_of(outputs.get("ca_cert")),
            kubeconfig=str(outputs["kubeconfig"]) if outputs.get("kubeconfig") else None)
        if credentials.token is None and credentials.kubeconfig is None:
            raise errors.PermanentError(
                f"Heat stack {stack.name} has neither an admin_token nor a kubeconfig output")
        version = outputs.get("kube_version")
        return ProvisionResult(
            api_address=api_address, master_addresses=_addresses(outputs.get("kube_masters")),
            node_addresses=_addresses(outputs.get("kube_minions")), credentials=credentials,
            stack_id=stack.id, coe_version=str(version) if version else None,
            notes=[f"Heat stack {stack.name} ({stack.id})"])

    async def create(self, bay: Bay, baymodel: BayModel) -> ProvisionResult:
        check_baymodel(baymodel)
        stack = await self._find(bay)
        if stack is None:
            name = stack_name(bay)
            template, files = load_template()
            stack_id = await self.heat.create(name, template, files, stack_parameters(bay, baymodel),
                                              timeout_mins=bay.create_timeout)
            stack = Stack(id=stack_id, name=name, status="CREATE_IN_PROGRESS")
            log.info("bay %s: Heat stack %s (%s) created", bay.uuid, name, stack_id)
        else:
            log.info("bay %s: found Heat stack %s (%s) %s", bay.uuid, stack.name, stack.id, stack.status)
        settled = await self._settle(stack)
        if settled is None:
            raise errors.PermanentError(f"Heat stack {stack.name} disappeared while being created")
        if settled.state != "COMPLETE" or settled.action in NOT_A_CLUSTER:
            raise self._failure(settled, "creating the bay")
        return self._result(settled)

    async def resize(self, bay: Bay, baymodel: BayModel, node_count: int) -> ProvisionResult:
        found = await self._find(bay)
        stack = await self._settle(found) if found is not None else None
        if stack is None or stack.action == "DELETE":
            raise errors.PermanentError(f"bay {bay.uuid} has no Heat stack to resize "
                                        f"(looked for {bay.stack_id or stack_name(bay)})")
        if (stack.state == "COMPLETE" and stack.action not in NOT_A_CLUSTER
                and str(stack.parameters.get("number_of_minions")) == str(node_count)):
            return self._result(stack)
        await self.heat.update(stack, {"number_of_minions": node_count}, bay.create_timeout)
        log.info("bay %s: Heat stack %s updating to %d minions", bay.uuid, stack.name, node_count)
        updated = await self._after_request(stack)
        if updated is None:
            raise errors.PermanentError(f"Heat stack {stack.name} disappeared while being updated")
        if updated.status != "UPDATE_COMPLETE":
            raise self._failure(updated, f"resizing the bay to {node_count} nodes")
        return self._result(updated)

    async def delete(self, bay: Bay, baymodel: BayModel) -> None:
        stack = await self._find(bay)
        if stack is None or stack.status == "DELETE_COMPLETE":
            log.info("bay %s: no Heat stack left to delete", bay.uuid)
            return
        if stack.status != "DELETE_IN_PROGRESS" and not await self.heat.delete(stack):
            return
        log.info("bay %s: Heat stack %s deleting", bay.uuid, stack.name)
        while True:
            current = await self._after_request(stack)
            if current is None or current.status == "DELETE_COMPLETE":
                log.info("bay %s: Heat stack %s deleted", bay.uuid, stack.name)
                return
            if current.status == "DELETE_FAILED":
                raise self._failure(current, "deleting the bay")
            # Heat shows neither progress nor an outcome of our DELETE: ask again.
            if not await self.heat.delete(current):
                return
            stack = current

    async def health(self, bay: Bay, baymodel: BayModel) -> str:
        try:
            stack = await self._find(bay)
        except errors.BayportError:
            return "UNKNOWN"
        if stack is None or stack.action == "DELETE" or stack.state == "FAILED":
            return "UNHEALTHY"
        if stack.state == "COMPLETE" and stack.action not in NOT_A_CLUSTER:
            return "HEALTHY"
        return "UNKNOWN"

    async def close(self) -> None:
        await self.session.close()
