"""Client commands for workloads in Magnum's words: pod-*, coe-service-*, rc-*.

``pod-create --manifest ./redis-master.yaml --bay testbay`` sends the file's text as
``manifest`` (or ``--manifest-url`` as ``manifest_url``) to ``POST /v1/pods`` and prints the
created pod; ``--wait`` follows it until it runs. Everything goes through ``cli.client``.
"""

import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from bayport.cli.client import Client, die, output, read_file

Fmt = Annotated[str, typer.Option("--format", "-f", help="table or json")]
Bay = Annotated[str | None, typer.Option("--bay", help="bay uuid or name")]
Namespace = Annotated[str | None, typer.Option("--namespace", help="when a name is in several")]
Ident = Annotated[str, typer.Argument(help="uuid or name")]
Idents = Annotated[list[str], typer.Argument(help="uuids or names")]
ManifestFile = Annotated[Path | None, typer.Option("--manifest", help="YAML or JSON manifest file")]
ManifestUrl = Annotated[str | None, typer.Option("--manifest-url", help="http(s) URL of a manifest")]

# (plural, command prefix, panel, list columns)
KINDS = (
    ("pods", "pod", "Pods", ["uuid", "name", "namespace", "status", "host", "pod_ip"]),
    ("services", "coe-service", "Services", ["uuid", "name", "namespace", "ip", "ports"]),
    ("rcs", "rc", "Replication controllers", ["uuid", "name", "namespace", "replicas",
                                              "ready_replicas", "status"]),
)
WAIT_DONE = {"pods": ("Running", "Succeeded", "Failed"), "services": ("Active",), "rcs": ("Running",)}


def _scope(bay: str | None, namespace: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if bay:
        params["bay_ident"] = bay
    if namespace:
        params["namespace"] = namespace
    return params


def _manifest_body(manifest: Path | None, manifest_url: str | None) -> dict[str, Any]:
    if (manifest is None) == (manifest_url is None):
        die("give exactly one of --manifest FILE and --manifest-url URL")
    if manifest is not None:
        return {"manifest": read_file(manifest)}
    return {"manifest_url": manifest_url}


def wait_for(client: Client, plural: str, uuid: str, timeout: float = 300) -> Any:
    """Print each status change (on stderr) until the object is up (or failed)."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = client.get(f"/v1/{plural}/{uuid}")
        status = item.get("status")
        if status != last:
            reason = item.get("status_reason") or ""
            typer.echo(f"{item['name']}: {status}" + (f" ({reason})" if reason else ""), err=True)
            last = status
        if status in ("Failed", "Deleted"):
            raise typer.Exit(2)
        if status in WAIT_DONE[plural]:
            return item
        time.sleep(0.1)
    die(f"gave up waiting after {timeout:.0f} s; last status {last}")


def register(app: typer.Typer) -> None:
    for plural, cmd, panel, columns in KINDS:
        _register(app, plural, cmd, panel, columns)
    _register_rc_update(app)


def _register(app: typer.Typer, plural: str, cmd: str, panel: str, columns: list[str]) -> None:
    noun = {"pods": "pod", "services": "service", "rcs": "replication controller"}[plural]

    @app.command(f"{cmd}-create", rich_help_panel=panel,
                 help=f"Create a {noun} in a bay from a manifest (--manifest FILE | --manifest-url URL).")
    def create(bay: Annotated[str, typer.Option("--bay", help="bay uuid or name")],
               manifest: ManifestFile = None, manifest_url: ManifestUrl = None,
               wait: Annotated[bool, typer.Option("--wait", help="follow until it is up")] = False,
               fmt: Fmt = "table") -> None:
        client = Client()
        created = client.post(f"/v1/{plural}", {"bay_uuid": bay, **_manifest_body(manifest, manifest_url)})
        output(wait_for(client, plural, created["uuid"]) if wait else created, fmt)

    @app.command(f"{cmd}-list", rich_help_panel=panel,
                 help=f"List {plural}, optionally of one bay (--bay).")
    def list_(bay: Bay = None, fmt: Fmt = "table",
              all_projects: Annotated[bool, typer.Option("--all-projects")] = False,
              show_deleted: Annotated[bool, typer.Option("--show-deleted", help="include objects "
                                                         "deleted in the cluster")] = False) -> None:
        params: dict[str, Any] = _scope(bay, None)
        if all_projects:
            params["all_projects"] = True
        if show_deleted:
            params["show_deleted"] = True
        items = Client().list_all(f"/v1/{plural}", plural, params)
        output(items, fmt, columns)

    @app.command(f"{cmd}-show", rich_help_panel=panel,
                 help=f"Show a {noun} (uuid, or name with --bay/--namespace when it is ambiguous).")
    def show(ident: Ident, bay: Bay = None, namespace: Namespace = None, fmt: Fmt = "table") -> None:
        output(Client().get(f"/v1/{plural}/{ident}", params=_scope(bay, namespace)), fmt)

    @app.command(f"{cmd}-delete", rich_help_panel=panel,
                 help=f"Delete {plural} (their Kubernetes objects too).")
    def delete(idents: Idents, bay: Bay = None, namespace: Namespace = None) -> None:
        client = Client()
        for ident in idents:
            client.delete(f"/v1/{plural}/{ident}", params=_scope(bay, namespace))
            typer.echo(f"Request to delete {noun} {ident} has been accepted.")


def _register_rc_update(app: typer.Typer) -> None:
    @app.command("rc-update", rich_help_panel="Replication controllers")
    def rc_update(ident: Ident,
                  replicas: Annotated[int | None, typer.Option("--replicas", min=0,
                                                               help="scale to N replicas")] = None,
                  manifest: ManifestFile = None, manifest_url: ManifestUrl = None,
                  bay: Bay = None, namespace: Namespace = None,
                  wait: Annotated[bool, typer.Option("--wait", help="until all are ready")] = False,
                  fmt: Fmt = "table") -> None:
        """Scale (--replicas N) or replace the manifest (--manifest FILE | --manifest-url URL)."""
        ops: list[dict[str, Any]] = []
        if replicas is not None:
            ops.append({"op": "replace", "path": "/replicas", "value": replicas})
        if manifest is not None or manifest_url is not None:
            body = _manifest_body(manifest, manifest_url)
            ops += [{"op": "replace", "path": f"/{k}", "value": v} for k, v in body.items()]
        if not ops:
            die("nothing to update: give --replicas N or a manifest")
        client = Client()
        params = _scope(bay, namespace)
        suffix = f"?{urlencode(params)}" if params else ""
        rc = client.patch(f"/v1/rcs/{ident}{suffix}", ops)
        output(wait_for(client, "rcs", rc["uuid"]) if wait else rc, fmt)
