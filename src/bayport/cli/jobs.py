"""Client commands for the tenant job service: tenant-*, template-*, volume-*, job-*.

``job-submit --tenant T --cmd "cp -r /src/* /dest/" --vol gluster-exam:/dest --vol nfs-exam:/src``
posts the seed's body to ``POST /v1/jobs`` and prints the record; ``--wait`` follows it to
Succeeded (exit 0) or Failed (exit 2). ``template-set --tenant T FILE`` sends a YAML or JSON
Job template. Everything goes through ``cli.client``.
"""

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from bayport.cli.client import Client, die, output, read_file
from bayport.cli.events import wait_on_events

Fmt = Annotated[str, typer.Option("--format", "-f", help="table or json")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="tenant id")]
TENANT_COLUMNS = ["id", "name", "bay", "namespace", "created_at"]
VOLUME_COLUMNS = ["name", "size", "status", "volume_name"]
JOB_COLUMNS = ["uuid", "name", "tenant", "status", "exit_code", "created_at"]
TERMINAL = ("Succeeded", "Failed")


def parse_vol(text: str) -> dict[str, str]:
    """``pvc:/mount`` → ``{"pvc", "mount"}``."""
    pvc, sep, mount = text.partition(":")
    if not sep or not pvc or not mount:
        die(f"--vol {text!r} is not PVC:/MOUNT (for example nfs-exam:/src)")
    return {"pvc": pvc, "mount": mount}


def wait_for_job(client: Client, job_uuid: str, timeout: float = 3600) -> Any:
    """Print each status change (on stderr) until Succeeded or Failed; Failed exits 2. Follows
    the event stream (cli.events), polling only where the stream is unavailable."""
    last: list[str | None] = [None]

    def report(job: dict[str, Any]) -> bool:
        status = job.get("status")
        if status != last[0]:
            message = job.get("message") or ""
            typer.echo(f"{job['name']}: {status}" + (f" ({message})" if message else ""), err=True)
            last[0] = status
        return status in TERMINAL

    def check(event: dict[str, Any] | None) -> tuple[bool, Any]:
        if event is not None and not report({**event, "message": event.get("reason")}):
            return False, None
        job = client.get(f"/v1/jobs/{job_uuid}")
        return report(job), job

    return wait_on_events(client, {"kind": "job"}, job_uuid, check, timeout=timeout, poll=0.1)


def register(app: typer.Typer) -> None:
    _register_tenants(app)
    _register_jobs(app)


def _register_tenants(app: typer.Typer) -> None:
    panel = "Tenant jobs"

    @app.command("tenant-create", rich_help_panel=panel)
    def tenant_create(name: Annotated[str, typer.Option(help="tenant name")],
                      bay: Annotated[str, typer.Option(help="bay uuid or name")],
                      tenant_id: Annotated[str | None, typer.Option(
                          "--id", help="tenant id = namespace name (default: a fresh 24-hex id)")] = None,
                      fmt: Fmt = "table") -> None:
        """Create a tenant and its namespace in a bay."""
        body: dict[str, Any] = {"name": name, "bay": bay}
        if tenant_id is not None:
            body["id"] = tenant_id
        output(Client().post("/v1/tenants", body), fmt)

    @app.command("tenant-list", rich_help_panel=panel)
    def tenant_list(fmt: Fmt = "table") -> None:
        """List tenants."""
        output(Client().list_all("/v1/tenants", "tenants"), fmt, TENANT_COLUMNS)

    @app.command("tenant-show", rich_help_panel=panel)
    def tenant_show(tenant_id: Annotated[str, typer.Argument(help="tenant id")], fmt: Fmt = "table") -> None:
        """Show a tenant."""
        output(Client().get(f"/v1/tenants/{tenant_id}"), fmt)

    @app.command("tenant-delete", rich_help_panel=panel)
    def tenant_delete(tenant_ids: Annotated[list[str], typer.Argument(help="tenant ids")],
                      force: Annotated[bool, typer.Option("--force", help="even with jobs running")]
                      = False) -> None:
        """Delete tenants and their namespaces (refused while jobs run, unless --force)."""
        client = Client()
        for tenant_id in tenant_ids:
            client.delete(f"/v1/tenants/{tenant_id}", params={"force": "true"} if force else None)
            typer.echo(f"Tenant {tenant_id} and its namespace have been deleted.")

    @app.command("template-show", rich_help_panel=panel)
    def template_show(tenant: TenantOpt,
                      fmt: Annotated[str, typer.Option("--format", "-f", help="yaml or json")] = "yaml"
                      ) -> None:
        """Print the tenant's Job template."""
        template = Client().get(f"/v1/tenants/{tenant}/template")
        if fmt == "json":
            output(template, "json")
        else:
            typer.echo(yaml.safe_dump(template, sort_keys=False), nl=False)

    @app.command("template-set", rich_help_panel=panel)
    def template_set(tenant: TenantOpt,
                     path: Annotated[Path, typer.Argument(help="YAML or JSON batch/v1 Job template")],
                     ) -> None:
        """Replace the tenant's Job template (checked: the name and command placeholders)."""
        try:
            template = yaml.safe_load(read_file(path))
        except yaml.YAMLError as exc:
            die(f"{path} is not YAML or JSON: {exc}")
        stored = Client().request("PUT", f"/v1/tenants/{tenant}/template", json=template)
        typer.echo(yaml.safe_dump(stored, sort_keys=False), nl=False)

    @app.command("volume-create", rich_help_panel=panel)
    def volume_create(tenant: TenantOpt, name: Annotated[str, typer.Option(help="claim name")],
                      size: Annotated[str, typer.Option(help="for example 1Gi")] = "1Gi",
                      fmt: Fmt = "table") -> None:
        """Create a PersistentVolumeClaim in the tenant's namespace."""
        output(Client().post(f"/v1/tenants/{tenant}/volumes", {"name": name, "size": size}), fmt)

    @app.command("volume-list", rich_help_panel=panel)
    def volume_list(tenant: TenantOpt, fmt: Fmt = "table") -> None:
        """List the tenant's volumes."""
        output(Client().get(f"/v1/tenants/{tenant}/volumes")["volumes"], fmt, VOLUME_COLUMNS)

    @app.command("volume-delete", rich_help_panel=panel)
    def volume_delete(tenant: TenantOpt, names: Annotated[list[str], typer.Argument(help="claim names")]
                      ) -> None:
        """Delete volumes (refused while a running job mounts one)."""
        client = Client()
        for name in names:
            client.delete(f"/v1/tenants/{tenant}/volumes/{name}")
            typer.echo(f"Volume {name} has been deleted.")


def _register_jobs(app: typer.Typer) -> None:
    panel = "Tenant jobs"

    @app.command("job-submit", rich_help_panel=panel)
    def job_submit(tenant: TenantOpt, cmd: Annotated[str, typer.Option(help="shell command to run")],
                   vol: Annotated[list[str] | None, typer.Option(
                       "--vol", help="PVC:/MOUNT, repeatable")] = None,
                   wait: Annotated[bool, typer.Option("--wait", help="follow to Succeeded or Failed")]
                   = False,
                   key: Annotated[str | None, typer.Option(
                       "--idempotency-key", help="repeat a submission with the same key: one job")]
                   = None,
                   fmt: Fmt = "table") -> None:
        """Run a command as a Job in the tenant's namespace; --wait exits 2 if it fails."""
        client = Client()
        body = {"tenant": tenant, "cmd": cmd, "vols": [parse_vol(v) for v in vol or []]}
        job = client.post("/v1/jobs", body, headers={"Idempotency-Key": key} if key else None)
        if wait:
            job = wait_for_job(client, job["uuid"])
        output(job, fmt)
        if job["status"] == "Failed":
            raise typer.Exit(2)

    @app.command("job-list", rich_help_panel=panel)
    def job_list(tenant: Annotated[str | None, typer.Option("--tenant", help="tenant id")] = None,
                 status: Annotated[str | None, typer.Option(
                     help="Pending, Running, Succeeded or Failed")] = None,
                 fmt: Fmt = "table") -> None:
        """List job records."""
        params = {k: v for k, v in (("tenant", tenant), ("status", status)) if v}
        output(Client().list_all("/v1/jobs", "jobs", params), fmt, JOB_COLUMNS)

    @app.command("job-show", rich_help_panel=panel)
    def job_show(job_uuid: Annotated[str, typer.Argument(help="job uuid")], fmt: Fmt = "table") -> None:
        """Show a job record."""
        output(Client().get(f"/v1/jobs/{job_uuid}"), fmt)

    @app.command("job-logs", rich_help_panel=panel)
    def job_logs(job_uuid: Annotated[str, typer.Argument(help="job uuid")],
                 tail: Annotated[int | None, typer.Option(help="last N lines")] = None) -> None:
        """Print the log of the job's pod (while the pod exists)."""
        text = Client().get(f"/v1/jobs/{job_uuid}/logs", params={"tail_lines": tail} if tail else None)
        typer.echo(text or "", nl=False)

    @app.command("job-delete", rich_help_panel=panel)
    def job_delete(job_uuids: Annotated[list[str], typer.Argument(help="job uuids")]) -> None:
        """Delete jobs: the Job, its pods and the record."""
        client = Client()
        for job_uuid in job_uuids:
            client.delete(f"/v1/jobs/{job_uuid}")
            typer.echo(f"Job {job_uuid} has been deleted.")
