"""Client commands for the pod network, as Neutron's client names them: port-list,
port-show, network-list, subnet-list.

``port-list --bay testbay --namespace default`` asks ``GET /v1/ports?bay_ident=…&namespace=…``
and prints each pod's port with its address; ``--format json`` prints Neutron's objects as
they are. Everything goes through ``cli.client``.
"""

from typing import Annotated, Any

import typer

from bayport.cli.client import Client, output

Fmt = Annotated[str, typer.Option("--format", "-f", help="table or json")]
Bay = Annotated[str | None, typer.Option("--bay", help="bay uuid or name")]
Namespace = Annotated[str | None, typer.Option("--namespace", help="only this Kubernetes namespace")]
AllProjects = Annotated[bool, typer.Option("--all-projects", help="admin: every project's")]
PANEL = "Pod network"
PORT_COLUMNS = ["id", "name", "namespace", "ip_address", "mac_address", "device_id", "status"]
NETWORK_COLUMNS = ["id", "name", "namespace", "bay_uuid", "subnets", "status"]
SUBNET_COLUMNS = ["id", "name", "namespace", "cidr", "gateway_ip", "network_id"]


def _params(bay: str | None, namespace: str | None, all_projects: bool, **more: str | None
            ) -> dict[str, Any]:
    given = {"bay_ident": bay, "namespace": namespace, **more}
    params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if all_projects:
        params["all_projects"] = True
    return params


def _with_address(port: dict[str, Any]) -> dict[str, Any]:
    fixed = port.get("fixed_ips") or []
    return {**port, "ip_address": fixed[0]["ip_address"] if fixed else None}


def register(app: typer.Typer) -> None:
    @app.command("port-list", rich_help_panel=PANEL)
    def port_list(bay: Bay = None, namespace: Namespace = None,
                  device_id: Annotated[str | None, typer.Option("--device-id", help="a pod's uid")] = None,
                  all_projects: AllProjects = False, fmt: Fmt = "table") -> None:
        """List pod ports (each pod's address and MAC), optionally of one bay and namespace."""
        items = Client().list_all("/v1/ports", "ports",
                                  _params(bay, namespace, all_projects, device_id=device_id))
        output(items if fmt == "json" else [_with_address(p) for p in items], fmt, PORT_COLUMNS)

    @app.command("port-show", rich_help_panel=PANEL)
    def port_show(port_id: Annotated[str, typer.Argument(help="port id")], fmt: Fmt = "table") -> None:
        """Show one port as Neutron does."""
        output(Client().get(f"/v1/ports/{port_id}")["port"], fmt)

    @app.command("network-list", rich_help_panel=PANEL)
    def network_list(bay: Bay = None, namespace: Namespace = None, all_projects: AllProjects = False,
                     fmt: Fmt = "table") -> None:
        """List namespace networks (one per namespace that has had a pod)."""
        items = Client().list_all("/v1/networks", "networks", _params(bay, namespace, all_projects))
        output(items, fmt, NETWORK_COLUMNS)

    @app.command("subnet-list", rich_help_panel=PANEL)
    def subnet_list(bay: Bay = None, namespace: Namespace = None, all_projects: AllProjects = False,
                    fmt: Fmt = "table") -> None:
        """List namespace subnets (a /24 of the bay's pod pool each)."""
        items = Client().list_all("/v1/subnets", "subnets", _params(bay, namespace, all_projects))
        output(items, fmt, SUBNET_COLUMNS)
