"""Entry point of the ``bayport`` command: collects the server and client command groups."""

from __future__ import annotations

import typer

from bayport.cli import bays, jobs, network, server, workloads

app = typer.Typer(help="Bayport: Kubernetes bays, workloads, pod networks and tenant jobs.\n\n"
                       "Client commands use BAYPORT_URL (default http://127.0.0.1:9511) and "
                       "BAYPORT_TOKEN (default: the local admin token file).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

for module in (server, bays, workloads, network, jobs):
    module.register(app)


def main() -> None:
    app()
