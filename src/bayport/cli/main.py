"""Entry point of the ``bayport`` command: collects the server and client command groups."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from bayport.cli import admin, bays, jobs, network, quotas, server, workloads

app = typer.Typer(help="Bayport: Kubernetes bays, workloads, pod networks and tenant jobs.\n\n"
                       "Client commands find the server from the settings `bayport serve` uses: "
                       "BAYPORT_URL, else BAYPORT_BIND (default 127.0.0.1:9511); the token from "
                       "BAYPORT_TOKEN, else BAYPORT_DATA_DIR/admin-token "
                       "(default ~/.local/share/bayport/admin-token).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def bayport_version() -> str:
    """The installed distribution's version: what a bug report needs to name."""
    try:
        return version("bayport")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"bayport {bayport_version()}")
        raise typer.Exit()


@app.callback()
def _root(version_: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                  help="Print the version and exit.")] = False) -> None:
    """Bayport: Kubernetes bays, workloads, pod networks and tenant jobs."""


for module in (server, bays, workloads, network, jobs, quotas, admin):
    module.register(app)


def main() -> None:
    app()
