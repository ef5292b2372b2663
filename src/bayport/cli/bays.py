"""Client commands for templates and clusters, in Magnum's words (baymodel-*, bay-*) and
the current ones (cluster-template-*, cluster-*), plus token-create."""


from pathlib import Path
from typing import Annotated, Any

import typer

from bayport.cli.client import Client, die, output, parse_labels
from bayport.cli.events import wait_on_events

Fmt = Annotated[str, typer.Option("--format", "-f", help="table or json")]
TERMINAL_FAILED = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")
IN_PROGRESS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS")
BAYMODEL_COLUMNS = ["uuid", "name", "coe", "driver", "public"]
BAY_COLUMNS = ["uuid", "name", "node_count", "master_count", "status"]


def wait_for_bay(client: Client, path: str, *, deleting: bool = False, timeout: float = 3600,
                 initial: dict[str, Any] | None = None) -> Any:
    """Print each status change until a terminal one; FAILED exits non-zero. Follows the
    event stream (cli.events), polling only where the stream is unavailable."""
    last: list[str | None] = [None]

    def report(bay: dict[str, Any]) -> bool:
        status = bay.get("status")
        if status != last[0]:
            reason = bay.get("status_reason") or ""
            typer.echo(f"{bay.get('name') or bay['uuid']}: {status}" + (f" ({reason})" if reason else ""))
            last[0] = status
        if status in TERMINAL_FAILED:
            raise typer.Exit(2)
        return status not in IN_PROGRESS

    def check(event: dict[str, Any] | None) -> tuple[bool, Any]:
        if event is not None and event.get("action") != "deleted" \
                and not report({**event, "status_reason": event.get("reason")}):
            return False, None
        resp = client.http.get(path)
        if deleting and resp.status_code == 404:
            typer.echo("deleted")
            return True, None
        if resp.status_code >= 400:
            client.get(path)  # prints the error and exits
        bay = resp.json()
        return report(bay), bay

    if initial is not None and "status" in initial:
        report(initial)
    uuid = path.rstrip("/").rsplit("/", 1)[-1]
    return wait_on_events(client, {"kind": "bay", "bay": uuid}, uuid, check, timeout=timeout,
                          poll=0.2)


def register(app: typer.Typer) -> None:
    for plural, cmd in (("baymodels", "baymodel"), ("clustertemplates", "cluster-template")):
        _register_templates(app, plural, cmd)
    for plural, cmd, tmpl_field in (("bays", "bay", "baymodel_id"),
                                    ("clusters", "cluster", "cluster_template_id")):
        _register_bays(app, plural, cmd, tmpl_field)

    @app.command("token-create", rich_help_panel="Admin")
    def token_create(project: Annotated[str, typer.Option(help="project id")],
                     user: Annotated[str, typer.Option(help="user name")],
                     role: Annotated[str, typer.Option(help="admin, member or reader")] = "member",
                     fmt: Fmt = "table") -> None:
        """Issue an API token (admin). The token is shown once; Bayport keeps only its hash."""
        body = Client().post("/v1/tokens", {"project": project, "user": user, "role": role})
        if fmt == "json":
            output(body, fmt)
        else:
            typer.echo(body["token"])


def _register_templates(app: typer.Typer, plural: str, cmd: str) -> None:
    panel = "Templates"

    @app.command(f"{cmd}-create", rich_help_panel=panel)
    def create(name: Annotated[str, typer.Option(help="template name")],
               image_id: Annotated[str | None, typer.Option(help="image for the nodes")] = None,
               keypair_id: Annotated[str | None, typer.Option()] = None,
               external_network_id: Annotated[str | None, typer.Option()] = None,
               flavor_id: Annotated[str | None, typer.Option()] = None,
               master_flavor_id: Annotated[str | None, typer.Option()] = None,
               dns_nameserver: Annotated[str | None, typer.Option()] = None,
               docker_volume_size: Annotated[int | None, typer.Option()] = None,
               network_driver: Annotated[str | None, typer.Option(help="bayport (default), flannel, "
                                                                       "calico, none")] = None,
               coe: Annotated[str, typer.Option()] = "kubernetes",
               driver: Annotated[str, typer.Option(help="local, heat or kubeconfig")] = "local",
               labels: Annotated[str | None, typer.Option(help="k=v,k2=v2")] = None,
               public: Annotated[bool, typer.Option("--public")] = False,
               fmt: Fmt = "table") -> None:
        """Create a cluster template."""
        body: dict[str, Any] = {"name": name, "coe": coe, "driver": driver,
                                "labels": parse_labels(labels), "public": public}
        for key, value in (("image_id", image_id), ("keypair_id", keypair_id),
                           ("external_network_id", external_network_id), ("flavor_id", flavor_id),
                           ("master_flavor_id", master_flavor_id), ("dns_nameserver", dns_nameserver),
                           ("docker_volume_size", docker_volume_size),
                           ("network_driver", network_driver)):
            if value is not None:
                body[key] = value
        output(Client().post(f"/v1/{plural}", body), fmt)

    @app.command(f"{cmd}-list", rich_help_panel=panel)
    def list_(fmt: Fmt = "table",
              all_projects: Annotated[bool, typer.Option("--all-projects")] = False) -> None:
        """List cluster templates."""
        items = Client().list_all(f"/v1/{plural}", plural, {"all_projects": all_projects} if all_projects
                                  else None)
        output(items, fmt, BAYMODEL_COLUMNS)

    @app.command(f"{cmd}-show", rich_help_panel=panel)
    def show(ident: Annotated[str, typer.Argument(help="uuid or name")], fmt: Fmt = "table") -> None:
        """Show a cluster template."""
        output(Client().get(f"/v1/{plural}/{ident}"), fmt)

    @app.command(f"{cmd}-update", rich_help_panel=panel)
    def update(ident: Annotated[str, typer.Argument(help="uuid or name")],
               op: Annotated[str, typer.Argument(help="add, replace or remove")],
               attributes: Annotated[list[str], typer.Argument(help="path=value ...")],
               fmt: Fmt = "table") -> None:
        """Update a template: `baymodel-update NAME replace name=new public=true`."""
        output(Client().patch(f"/v1/{plural}/{ident}", build_patch(op, attributes)), fmt)

    @app.command(f"{cmd}-delete", rich_help_panel=panel)
    def delete(idents: Annotated[list[str], typer.Argument(help="uuid or name")]) -> None:
        """Delete cluster templates (refused while a bay uses one)."""
        client = Client()
        for ident in idents:
            client.delete(f"/v1/{plural}/{ident}")
            typer.echo(f"Request to delete {cmd} {ident} has been accepted.")


def build_patch(op: str, attributes: list[str]) -> list[dict[str, Any]]:
    if op not in ("add", "replace", "remove"):
        die(f"op must be add, replace or remove, not {op!r}")
    ops: list[dict[str, Any]] = []
    for attr in attributes:
        path, sep, raw = attr.partition("=")
        if op != "remove" and not sep:
            die(f"{attr!r} is not path=value")
        entry: dict[str, Any] = {"op": op, "path": "/" + path.strip().lstrip("/")}
        if op != "remove":
            value: Any = raw
            if raw.lower() in ("true", "false"):
                value = raw.lower() == "true"
            elif raw.isdigit():
                value = int(raw)
            entry["value"] = value
        ops.append(entry)
    return ops


def _register_bays(app: typer.Typer, plural: str, cmd: str, tmpl_field: str) -> None:
    panel = "Bays"
    tmpl_opt = "--baymodel" if cmd == "bay" else "--cluster-template"

    @app.command(f"{cmd}-create", rich_help_panel=panel)
    def create(name: Annotated[str, typer.Option(help="bay name")],
               template: Annotated[str, typer.Option(tmpl_opt, help="template uuid or name")],
               node_count: Annotated[int, typer.Option(help="worker nodes")] = 1,
               master_count: Annotated[int, typer.Option(help="masters")] = 1,
               timeout: Annotated[int | None, typer.Option(help="create timeout, minutes")] = None,
               discovery_url: Annotated[str | None, typer.Option()] = None,
               labels: Annotated[str | None, typer.Option(help="k=v,k2=v2")] = None,
               wait: Annotated[bool, typer.Option("--wait", help="follow until a terminal status")]
               = False,
               fmt: Fmt = "table") -> None:
        """Create a bay; with --wait, show progress and exit non-zero if it fails."""
        client = Client()
        body: dict[str, Any] = {"name": name, tmpl_field: template, "node_count": node_count,
                                "master_count": master_count, "discovery_url": discovery_url}
        body["bay_create_timeout" if cmd == "bay" else "create_timeout"] = timeout
        if labels:
            body["labels"] = parse_labels(labels)
        created = client.post(f"/v1/{plural}", body)
        uuid = created["uuid"]
        if wait:
            output(wait_for_bay(client, f"/v1/{plural}/{uuid}", initial=created), fmt)
        elif cmd == "bay":
            output(created, fmt)
        else:
            typer.echo(f"Request to create cluster {uuid} accepted")

    @app.command(f"{cmd}-list", rich_help_panel=panel)
    def list_(fmt: Fmt = "table",
              all_projects: Annotated[bool, typer.Option("--all-projects")] = False) -> None:
        """List bays."""
        items = Client().list_all(f"/v1/{plural}", plural, {"all_projects": all_projects} if all_projects
                                  else None)
        output(items, fmt, BAY_COLUMNS)

    @app.command(f"{cmd}-show", rich_help_panel=panel)
    def show(ident: Annotated[str, typer.Argument(help="uuid or name")], fmt: Fmt = "table") -> None:
        """Show a bay."""
        output(Client().get(f"/v1/{plural}/{ident}"), fmt)

    @app.command(f"{cmd}-update", rich_help_panel=panel)
    def update(ident: Annotated[str, typer.Argument(help="uuid or name")],
               op: Annotated[str, typer.Argument(help="replace")],
               attributes: Annotated[list[str], typer.Argument(help="node_count=N")],
               wait: Annotated[bool, typer.Option("--wait")] = False, fmt: Fmt = "table") -> None:
        """Resize a bay: `bay-update testbay replace node_count=3 [--wait]`."""
        client = Client()
        bay = client.patch(f"/v1/{plural}/{ident}", build_patch(op, attributes))
        output(wait_for_bay(client, f"/v1/{plural}/{bay['uuid']}", initial=bay) if wait else bay,
               fmt)

    @app.command(f"{cmd}-delete", rich_help_panel=panel)
    def delete(idents: Annotated[list[str], typer.Argument(help="uuid or name")],
               wait: Annotated[bool, typer.Option("--wait")] = False) -> None:
        """Delete bays."""
        client = Client()
        for ident in idents:
            uuid = client.get(f"/v1/{plural}/{ident}")["uuid"]
            client.delete(f"/v1/{plural}/{uuid}")
            typer.echo(f"Request to delete {cmd} {ident} has been accepted.")
            if wait:
                wait_for_bay(client, f"/v1/{plural}/{uuid}", deleting=True)

    @app.command(f"{cmd}-config", rich_help_panel=panel)
    def config(ident: Annotated[str, typer.Argument(help="uuid or name")],
               output_file: Annotated[Path | None, typer.Option("--output", "-o",
                                                              help="write here (mode 0600)")] = None
               ) -> None:
        """Print (or write) the bay's kubeconfig: `kubectl --kubeconfig FILE get nodes`."""
        text = Client().get(f"/v1/{plural}/{ident}/config")
        if output_file is None:
            typer.echo(text, nl=False)
            return
        output_file.write_text(text)
        output_file.chmod(0o600)
        typer.echo(f"kubeconfig written to {output_file}; try: kubectl --kubeconfig {output_file} "
                   "get nodes")
