"""Client commands for per-project quotas (Magnum's ``/v1/quotas``)."""

from __future__ import annotations

from typing import Annotated

import typer

from bayport.cli.client import Client, output

Fmt = Annotated[str, typer.Option("--format", "-f", help="table or json")]
COLUMNS = ["project_id", "resource", "hard_limit", "in_use", "default"]
Resource = Annotated[str, typer.Argument(
    help="Cluster, Node, Operation, Pod, Job or CreateTimeout")]


def register(app: typer.Typer) -> None:
    panel = "Quotas"

    @app.command("quota-create", rich_help_panel=panel)
    def create(project: Annotated[str, typer.Option(help="project id")],
               resource: Resource,
               hard_limit: Annotated[int, typer.Option(help="the limit")],
               fmt: Fmt = "table") -> None:
        """Set a project's limit for one resource (admin)."""
        output(Client().post("/v1/quotas", {"project_id": project, "resource": resource,
                                            "hard_limit": hard_limit}), fmt)

    @app.command("quota-list", rich_help_panel=panel)
    def list_(project: Annotated[str | None, typer.Option(
                  help="project id (default: your own; admins without it: every stored quota)")] = None,
              fmt: Fmt = "table") -> None:
        """Quotas with what is in use: your project's, or (admin) another's or all."""
        params = {"project_id": project} if project else None
        output(Client().get("/v1/quotas", params=params)["quotas"], fmt, COLUMNS)

    @app.command("quota-show", rich_help_panel=panel)
    def show(project: Annotated[str, typer.Argument(help="project id")], resource: Resource,
             fmt: Fmt = "table") -> None:
        """One stored quota and its use."""
        output(Client().get(f"/v1/quotas/{project}/{resource}"), fmt)

    @app.command("quota-update", rich_help_panel=panel)
    def update(project: Annotated[str, typer.Argument(help="project id")], resource: Resource,
               hard_limit: Annotated[int, typer.Option(help="the new limit")],
               fmt: Fmt = "table") -> None:
        """Change a stored quota (admin)."""
        output(Client().patch(f"/v1/quotas/{project}/{resource}", {"hard_limit": hard_limit}), fmt)

    @app.command("quota-delete", rich_help_panel=panel)
    def delete(project: Annotated[str, typer.Argument(help="project id")],
               resource: Resource) -> None:
        """Remove a stored quota: the operator's default applies again (admin)."""
        Client().delete(f"/v1/quotas/{project}/{resource}")
        typer.echo(f"quota {resource} of project {project} removed")
