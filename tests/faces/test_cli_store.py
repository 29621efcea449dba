"""The `memory-store` command as a tool: one store wherever it is run from, no new store made
by mistake, quiet on success, quick to answer --help and --version, one-line errors."""

from __future__ import annotations

import gc
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from memory_store import __version__
from memory_store.cli import main
from memory_store.config import Settings
from memory_store.runtime import open_runtime
from tests.conftest import BACKEND
from tests.live_server import free_port, run_cli

sqlite_only = pytest.mark.sqlite_only


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MEMORY_STORE_* setting but the database URLs (PostgreSQL runs), and a user data
    folder under tmp_path (XDG_DATA_HOME), so that the default data dir is there."""
    for name in list(os.environ):
        if name.startswith("MEMORY_STORE_") and not name.endswith("_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "memory-store"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_default_data_dir_is_the_users_data_folder_from_any_working_directory(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = set()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        seen.add(Settings().data_dir)
    assert seen == {clean_env}


def test_commands_run_from_another_folder_find_the_same_store(
    clean_env: Path, tmp_path: Path
) -> None:
    for folder in ("here", "elsewhere"):
        (tmp_path / folder).mkdir()
    created = subprocess.run(
        [sys.executable, "-m", "memory_store", "tokens", "create", "--role", "assistant"],
        cwd=tmp_path / "here",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    where = str(clean_env) if BACKEND == "sqlite" else "the database at MEMORY_STORE_DATABASE_URL"
    assert f"creating a new store in {where}" in created.stderr
    token_id = created.stdout.split()[1].rstrip(":")
    listed = subprocess.run(
        [sys.executable, "-m", "memory_store", "tokens", "list"],
        cwd=tmp_path / "elsewhere",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert token_id in listed.stdout
    assert listed.stderr == "", "an existing store is not announced"
    assert not (tmp_path / "elsewhere" / "var").exists()


@sqlite_only
@pytest.mark.parametrize(
    "argv",
    [
        ["tokens", "list"],
        ["tokens", "revoke", "tok_0000000000000000"],
        ["keys", "status"],
        ["keys", "rotate"],
        ["audit", "verify"],
        ["audit", "export"],
        ["retention", "sweep"],
        ["db", "current"],
    ],
)
def test_a_command_that_needs_a_store_says_which_folder_it_looked_in_and_creates_none(
    clean_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert f"no store in {clean_env} (MEMORY_STORE_DATA_DIR)" in err
    assert not clean_env.exists(), "nothing was created"


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"memory-store {__version__}"


def test_help_imports_neither_the_server_nor_the_databases() -> None:
    """What makes --help quick (measured in README): parsing loads no server code."""
    probe = (
        "import sys\n"
        "from memory_store.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'fastapi', 'sqlalchemy', 'uvicorn', 'pydantic', 'cryptography', 'rich'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "usage: memory-store" in done.stdout
    assert done.stderr.strip() == "[]"


def test_a_command_on_an_up_to_date_store_prints_only_its_answer(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    open_runtime(Settings()).close()
    for argv in (["tokens", "list"], ["keys", "status"], ["db", "upgrade"]):
        code, _, err = run(capsys, *argv)
        assert code == 0, err
        assert err == "", f"{argv}: no migration or checkpoint lines: {err}"


def test_log_level_set_by_the_operator_still_applies_to_commands(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    open_runtime(Settings()).close()
    monkeypatch.setenv("MEMORY_STORE_LOG_LEVEL", "info")
    monkeypatch.setenv("MEMORY_STORE_LOG_FORMAT", "json")
    code, _, err = run(capsys, "tokens", "create", "--role", "admin")
    assert code == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines()]
    assert "Context impl SQLiteImpl." not in events
    assert "Will assume non-transactional DDL." not in events


def test_serve_on_a_taken_port_says_so_in_one_line_naming_the_setting(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "serve", "--port", str(port))
    assert code == 1
    assert err.count("\n") == 1, err
    assert f"port {port} on 127.0.0.1 is taken" in err
    assert "--port" in err
    assert "MEMORY_STORE_PORT" in err


def test_serve_says_where_the_page_and_the_docs_are_and_how_to_get_a_token(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[socket.socket]] = []
    frozen: list[int] = []

    def run_server(_server: object, sockets: list[socket.socket]) -> None:
        ran.append(sockets)
        frozen.append(gc.get_freeze_count())
        gc.unfreeze()  # this test process goes on running other tests
        for sock in sockets:
            sock.close()

    monkeypatch.setattr("uvicorn.Server.run", run_server)
    port = free_port()
    erasers = {t for t in threading.enumerate() if t.name == "memory-store-eraser"}
    code, out, _ = run(capsys, "serve", "--port", str(port))
    assert code == 0
    assert len(ran) == 1
    # The app, the runtime and the model were moved out of the collector's way before serving.
    assert frozen[0] > 10_000
    # The server stopped before its start-up ran: `serve` closed the store all the same.
    left = {t for t in threading.enumerate() if t.name == "memory-store-eraser" and t.is_alive()}
    assert left <= erasers
    assert f"http://127.0.0.1:{port}/ui/" in out
    assert f"http://127.0.0.1:{port}/docs" in out
    assert "memory-store tokens create --role user --user" in out
    assert "a new store in" in out


@sqlite_only
def test_a_command_while_the_database_stays_locked_ends_in_one_line_not_a_traceback(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    open_runtime(Settings()).close()
    monkeypatch.setattr("memory_store.storage.engines.BUSY_TIMEOUT_SECONDS", 0.2)
    holder = sqlite3.connect(clean_env / "memory.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # a writer that holds on past the timeout
        code, out, err = run(capsys, "tokens", "create", "--role", "admin")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1
    assert "Traceback" not in err
    assert "mst_" not in out
    assert err.strip().splitlines()[-1] == (
        "memory-store: the database stayed busy past the busy timeout; try again"
    )


@pytest.mark.skipif(BACKEND != "sqlite", reason="the real process runs on SQLite here")
def test_the_real_command_reports_a_missing_store_without_a_traceback(clean_env: Path) -> None:
    done = run_cli("keys", "status")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "no store in" in done.stderr


class _Terminal(io.StringIO):
    """What a terminal looks like to the command: a stream that says it is one."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("argv", "bar"),
    [
        (["keys", "rotate"], "rewrapping data keys"),
        (["audit", "verify", "--allow-unanchored"], "verifying the audit trail"),
        (["audit", "export", "-o", "EXPORT"], "exporting the audit trail"),
        (["retention", "sweep"], "purging expired memories"),
    ],
)
def test_long_commands_draw_a_progress_bar_on_a_terminal_and_nothing_in_a_pipe(
    clean_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    bar: str,
) -> None:
    runtime = open_runtime(Settings())
    runtime.keyring.key_for_write("alice")
    runtime.close()
    argv = [str(tmp_path / "export.jsonl") if word == "EXPORT" else word for word in argv]
    code, _, piped = run(capsys, *argv)
    assert code == 0, piped
    assert bar not in piped
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv) == 0
    assert bar in terminal.getvalue()
