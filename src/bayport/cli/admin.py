"""``bayport admin``: operator commands that act on this host rather than through the API.

``admin leftovers`` prints the host resources (podman pods and containers, bridges, network
namespaces, pod pool routes) of embedded bays whose owner no longer exists, as
``cluster.runtime.leftovers`` finds them; ``--remove`` deletes them (root only), ``unowned``
ones only with ``--include-unowned``. A running server's resources are never listed or touched.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from bayport.cli.client import die, output
from bayport.cluster.runtime import leftovers as host

COLUMNS = ["kind", "name", "owner", "bay", "why"]


def _rows(found: list[host.Leftover]) -> list[dict[str, str]]:
    return [{"kind": lo.resource.kind, "name": lo.resource.name,
             "owner": "unowned" if lo.unowned else str(lo.resource.owner),
             "bay": lo.resource.bay or "", "why": lo.why} for lo in found]


async def _leftovers(remove: bool, include_unowned: bool, fmt: str) -> int:
    check = host.OwnerCheck(hold=remove)
    try:
        found = await host.find(check)
        if not remove:
            output(_rows(found), fmt, COLUMNS)
            return 0
        chosen = [lo for lo in found if include_unowned or not lo.unowned]
        failures: list[str] = []
        done = await host.remove(chosen, on_error=lambda lo, exc: failures.append(
            f"{lo.resource.kind} {lo.resource.name}: {exc}"))
    finally:
        check.close()
    output(_rows(done), fmt, COLUMNS)
    kept = len(found) - len(chosen)
    if fmt != "json":
        typer.echo(f"removed {len(done)}" + (f"; kept {kept} unowned (--include-unowned removes them)"
                                             if kept else ""), err=True)
    for failure in failures:
        typer.echo(f"ERROR: could not remove {failure}", err=True)
    return 1 if failures else 0


def register(app: typer.Typer) -> None:
    admin = typer.Typer(help="Operator commands on this host.", no_args_is_help=True)
    app.add_typer(admin, name="admin", rich_help_panel="Server")

    @admin.command("leftovers")
    def leftovers(
        remove: Annotated[bool, typer.Option("--remove", help="delete them (needs root)")] = False,
        include_unowned: Annotated[bool, typer.Option(
            "--include-unowned", help="with --remove: also those that carry no owner")] = False,
        fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
    ) -> None:
        """List host resources of embedded bays whose owner (data dir, or bay) no longer exists."""
        if include_unowned and not remove:
            die("--include-unowned only means something with --remove")
        if remove and os.geteuid() != 0:
            die("removing leftovers needs root: bridges, network namespaces, routes and root's podman "
                "pods are the kernel's and root's (run it with sudo)")
        if not remove and os.geteuid() != 0:
            typer.echo("note: not root, so root's podman pods are not visible here", err=True)
        raise typer.Exit(asyncio.run(_leftovers(remove, include_unowned, fmt)))
