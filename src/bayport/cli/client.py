"""The HTTP side of the client commands: where the API is, which token, how errors and
tables are printed. Every client command goes through ``Client``; where the API is and which
token to send come from the same ``Settings`` the server reads (``Settings.client_url``,
``Settings.client_token``), so BAYPORT_BIND and BAYPORT_DATA_DIR mean the same to both."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer

from bayport.config import Settings


def _client_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError: a BAYPORT_* value that does not parse
        die(f"bad Bayport setting: {exc}")


def die(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"ERROR: {message}", err=True)
    raise typer.Exit(code)


class Client:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        settings = _client_settings()
        try:
            self.url = (url or settings.client_url).rstrip("/")
            self.token = token or settings.client_token()
        except (ValueError, OSError) as exc:
            die(f"cannot tell where Bayport is or which token to use: {exc}")
        headers = {"OpenStack-API-Version": "container-infra latest", "Accept": "application/json",
                   "User-Agent": "bayport-cli"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=60.0)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            die(f"cannot reach Bayport at {self.url}: {exc} (is `bayport serve` running? "
                "set BAYPORT_URL, or the BAYPORT_BIND it was started with)")
        if resp.status_code >= 400:
            try:
                errs = resp.json().get("errors", [])
                detail = "; ".join(e.get("detail", "") for e in errs) or resp.text
            except ValueError:
                detail = resp.text
            hint = (" (set BAYPORT_TOKEN, or the BAYPORT_DATA_DIR `bayport serve` uses)"
                    if resp.status_code == 401 else "")
            die(f"{detail} (HTTP {resp.status_code}){hint}")
        if resp.status_code == 204 or not resp.content:
            return None
        if "json" in resp.headers.get("content-type", ""):
            return resp.json()
        return resp.text

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("POST", path, json=body, **kw)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def list_all(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Follow ``next`` links so a list shows everything, page by page."""
        items: list[Any] = []
        body = self.get(path, params={**(params or {}), "limit": 200})
        while True:
            items.extend(body.get(key, []))
            nxt = body.get("next")
            if not nxt:
                return items
            body = self.get(nxt.replace(self.url, ""))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [sep, "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |", sep]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
            for row in cells]
    out.append(sep)
    typer.echo("\n".join(out))


def print_object(obj: dict[str, Any]) -> None:
    rows = [{"Property": k, "Value": v} for k, v in obj.items() if k != "links"]
    print_table(rows, ["Property", "Value"])


def output(data: Any, fmt: str, columns: list[str] | None = None) -> None:
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    elif isinstance(data, list):
        print_table(data, columns or sorted({k for d in data for k in d}))
    elif isinstance(data, dict):
        print_object(data)
    else:
        sys.stdout.write(str(data))


def parse_labels(text: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` (repeatable option values joined) → dict; a bad pair is a usage error."""
    labels: dict[str, str] = {}
    if not text:
        return labels
    for pair in text.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            die(f"label {pair!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def read_file(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        die(f"cannot read {path}: {exc.strerror}")
