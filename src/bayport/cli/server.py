"""Server commands: serve, api, conductor, db upgrade. Options carry the same names as the
BAYPORT_* settings and are written back into the environment for child processes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from bayport.config import Settings

DataDir = Annotated[Path | None, typer.Option(help="BAYPORT_DATA_DIR: state, tokens, bay data")]
Bind = Annotated[str | None, typer.Option(help="BAYPORT_BIND: host:port of the API")]
DbUrl = Annotated[str | None, typer.Option(help="BAYPORT_DATABASE_URL (default: SQLite in data dir)")]
BusUrl = Annotated[str | None, typer.Option(help="BAYPORT_TRANSPORT_URL: memory:// or amqp://…")]


def _settings(data_dir: Path | None, bind: str | None, database_url: str | None,
              transport_url: str | None) -> Settings:
    from bayport.cli import runner  # server machinery: only server commands pay for it
    for name, value in (("DATA_DIR", data_dir), ("BIND", bind), ("DATABASE_URL", database_url),
                        ("TRANSPORT_URL", transport_url)):
        if value is not None:
            os.environ[f"BAYPORT_{name}"] = str(value)
    settings = Settings()
    runner.setup_logging(settings.log_level)
    return settings


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Server")
    def serve(data_dir: DataDir = None, bind: Bind = None, database_url: DbUrl = None,
              transport_url: BusUrl = None) -> None:
        """Run everything in one process (embedded mode): API, conductor, embedded bays."""
        from bayport.cli import runner  # server machinery: only server commands pay for it
        runner.run_loop(runner.serve(_settings(data_dir, bind, database_url, transport_url)))

    @app.command(rich_help_panel="Server")
    def api(data_dir: DataDir = None, bind: Bind = None, database_url: DbUrl = None,
            transport_url: BusUrl = None) -> None:
        """Run an API worker (production: run several behind a balancer)."""
        from bayport.cli import runner  # server machinery: only server commands pay for it
        runner.run_loop(runner.run_api(_settings(data_dir, bind, database_url, transport_url)))

    @app.command(rich_help_panel="Server")
    def conductor(data_dir: DataDir = None, database_url: DbUrl = None,
                  transport_url: BusUrl = None,
                  external_netd: Annotated[bool, typer.Option(
                      "--external-netd", help="leave pod networking to a `bayport netd`")] = False
                  ) -> None:
        """Run a conductor (production: run several; they share the work)."""
        from bayport.cli import runner  # server machinery: only server commands pay for it
        runner.run_loop(runner.run_conductor(_settings(data_dir, None, database_url, transport_url),
                                             external_netd=external_netd))

    @app.command(rich_help_panel="Server")
    def netd(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
        """Run the pod-network controller alone (one per deployment; conductors --external-netd)."""
        from bayport.cli import runner  # server machinery: only server commands pay for it
        runner.run_loop(runner.run_netd(_settings(data_dir, None, database_url, None)))

    db = typer.Typer(help="Database schema commands.", no_args_is_help=True)

    @db.command("upgrade")
    def db_upgrade(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
        """Upgrade the database schema to the newest revision; make the admin token if none."""
        from bayport.cli import runner  # server machinery: only server commands pay for it
        settings = _settings(data_dir, None, database_url, None)
        created = asyncio.run(runner.upgrade_db(settings, bootstrap=True))
        typer.echo(f"database at head: {settings.effective_database_url.split('@')[-1]}")
        if created:
            typer.echo(f"admin token written to {settings.admin_token_file}")

    app.add_typer(db, name="db", rich_help_panel="Server")
