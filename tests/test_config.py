"""Client discovery: a client command reads the same Settings as the server, so the variables a
user started ``bayport serve`` with (BAYPORT_BIND, BAYPORT_DATA_DIR) are enough to reach it.
Also the permissions of what serve keeps in its data dir, and ``bayport --version``."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bayport.cli import client as client_module
from bayport.cli.main import app
from bayport.cli.runner import client_hint, upgrade_db
from bayport.config import Settings
from bayport.files import private_sqlite

BIN = Path(sys.executable).parent


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No BAYPORT_* from the caller's shell, and a HOME of our own for the default data dir."""
    for key in list(os.environ):
        if key.startswith("BAYPORT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_url_comes_from_bayport_url_first(env: pytest.MonkeyPatch) -> None:
    env.setenv("BAYPORT_URL", "https://bayport.example:8443/")
    env.setenv("BAYPORT_BIND", "127.0.0.1:1234")
    assert Settings().client_url == "https://bayport.example:8443"


@pytest.mark.parametrize(("bind", "url"), [
    ("127.0.0.1:19511", "http://127.0.0.1:19511"),
    ("0.0.0.0:9600", "http://127.0.0.1:9600"),
    (":9601", "http://127.0.0.1:9601"),
    ("[::]:9602", "http://[::1]:9602"),
    ("::1:9603", "http://[::1]:9603"),
    ("10.1.2.3:80", "http://10.1.2.3:80"),
])
def test_url_follows_bayport_bind_when_no_url(env: pytest.MonkeyPatch, bind: str, url: str) -> None:
    env.setenv("BAYPORT_BIND", bind)
    assert Settings().client_url == url


def test_url_default_is_the_default_bind(env: pytest.MonkeyPatch) -> None:
    assert Settings().client_url == "http://127.0.0.1:9511"


def test_bind_from_the_config_file_is_followed_too(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "bayport.toml"
    config.write_text('bind = "0.0.0.0:9700"\n')
    env.setenv("BAYPORT_CONFIG_FILE", str(config))
    assert Settings().client_url == "http://127.0.0.1:9700"


def test_token_from_env_first_then_the_data_dir_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env.setenv("BAYPORT_DATA_DIR", str(data))
    assert Settings().client_token() is None
    data.mkdir()
    (data / "admin-token").write_text("bpt_from_file\n")
    assert Settings().client_token() == "bpt_from_file"
    env.setenv("BAYPORT_TOKEN", "bpt_from_env")
    assert Settings().client_token() == "bpt_from_env"


def test_token_default_file_is_under_home(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    default = tmp_path / "home" / ".local" / "share" / "bayport" / "admin-token"
    default.parent.mkdir(parents=True)
    default.write_text("bpt_home\n")
    assert Settings().client_token() == "bpt_home"


def test_client_sends_what_the_settings_name(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("BAYPORT_BIND", "0.0.0.0:9801")
    env.setenv("BAYPORT_DATA_DIR", str(tmp_path))
    (tmp_path / "admin-token").write_text("bpt_x\n")
    client = client_module.Client()
    assert client.url == "http://127.0.0.1:9801"
    assert client.http.headers["X-Auth-Token"] == "bpt_x"


def test_the_console_script_reaches_a_server_found_by_bind(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """End to end without BAYPORT_URL: the failure names the address derived from BAYPORT_BIND."""
    env.setenv("BAYPORT_BIND", "0.0.0.0:1")  # port 1: nothing listens, so the error says where it went
    env.setenv("BAYPORT_DATA_DIR", str(tmp_path))
    done = subprocess.run([str(BIN / "bayport"), "bay-list"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)
    assert done.returncode == 1
    assert "cannot reach Bayport at http://127.0.0.1:1" in done.stderr


def test_a_bad_setting_is_a_clear_error_not_a_traceback(env: pytest.MonkeyPatch) -> None:
    env.setenv("BAYPORT_RPC_TIMEOUT", "soon")
    result = CliRunner().invoke(app, ["bay-list"])
    assert result.exit_code == 1
    assert "bad Bayport setting" in result.output


def test_client_hint_names_only_what_differs_from_the_defaults(env: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    assert client_hint(Settings()) == ""
    env.setenv("BAYPORT_BIND", "0.0.0.0:9900")
    env.setenv("BAYPORT_DATA_DIR", str(tmp_path / "my data"))
    assert client_hint(Settings()) == f"BAYPORT_BIND=0.0.0.0:9900 BAYPORT_DATA_DIR='{tmp_path}/my data' "


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("bayport 0.")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_and_data_dir_are_private_even_when_they_were_not(env: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    settings = Settings(data_dir=data)
    assert await upgrade_db(settings, bootstrap=True)
    files = {p.name: _mode(p) for p in data.iterdir() if p.is_file()}
    assert "bayport.db" in files and "admin-token" in files
    assert all(mode == 0o600 for mode in files.values()), files
    assert _mode(data) == 0o700
    assert _mode(data / "bays") == 0o700


def test_sqlite_side_files_inherit_the_private_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: without private_sqlite the WAL would be 0644
    try:
        path = tmp_path / "objects.sqlite"
        private_sqlite(path)
        db = sqlite3.connect(path)
        db.execute("pragma journal_mode=wal")
        db.execute("create table t (x)")
        db.execute("insert into t values (1)")
        db.commit()
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert {_mode(path), _mode(wal), _mode(path.with_name(path.name + "-shm"))} == {0o600}
        db.close()
    finally:
        os.umask(old)


def test_wide_sqlite_files_left_by_an_older_run_are_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "bayport.db"
    for name in ("bayport.db", "bayport.db-wal", "bayport.db-shm"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    private_sqlite(path)
    assert {_mode(tmp_path / n) for n in ("bayport.db", "bayport.db-wal", "bayport.db-shm")} == {0o600}


def test_a_401_names_the_settings_that_choose_the_token(env: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("BAYPORT_URL", "http://bayport.invalid")
    client = client_module.Client(token="bpt_t")
    client.http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(
        lambda request: httpx.Response(401, json={"errors": [{"detail": "token not valid"}]})))
    with pytest.raises(client_module.typer.Exit):
        client.get("/v1/bays")
    err = capsys.readouterr().err
    assert "token not valid (HTTP 401)" in err and "BAYPORT_TOKEN" in err and "BAYPORT_DATA_DIR" in err
