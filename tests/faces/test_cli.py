"""The `memory-store` command, run in-process through cli.main(argv) (and once for real)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient
from freezegun import freeze_time

from memory_store.app import create_app
from memory_store.cli import main
from memory_store.config import Settings
from memory_store.runtime import open_runtime
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory
from tests.live_server import console_script

TOKEN_LINE = re.compile(r"^mst_[A-Za-z0-9_-]{40,}$")
CREATED_LINE = re.compile(r"^created (tok_[0-9a-f]{16}): role (\w+)(?: for user (\S+))?, name ")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures logging globally (onto pytest's captured stderr); put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog_config = structlog.get_config()
    yield
    root.handlers = handlers
    root.setLevel(level)
    structlog.configure(**structlog_config)


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The CLI's settings come from the environment: point them at a fresh data dir."""
    for name in list(os.environ):
        if name.startswith("MEMORY_STORE_"):
            monkeypatch.delenv(name)
    directory = tmp_path / "var"
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(directory))
    return directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) -> (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def create_token(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    """`tokens create ...` -> (token id, token)."""
    code, out, err = run(capsys, "tokens", "create", *argv)
    assert code == 0, err
    lines = out.strip().splitlines()
    created = CREATED_LINE.match(lines[0])
    assert created, out
    return created.group(1), lines[-1]


def make_store() -> None:
    """A store in the data dir, as the server's first start makes it."""
    open_runtime(Settings()).close()


def make_data_keys(*users: str) -> None:
    """Give some users a data key, as their first memory would."""
    runtime = open_runtime(Settings())
    try:
        for user in users:
            runtime.keyring.key_for_write(user)
    finally:
        runtime.close()


# -- tokens -----------------------------------------------------------------------------------


def test_tokens_create_prints_the_token_alone_on_the_last_line_and_it_authenticates(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "tokens", "create", "--role", "assistant", "--name", "copilot")
    assert code == 0, err
    lines = out.splitlines()
    token = lines[-1]
    assert TOKEN_LINE.match(token), out
    assert out.count(token) == 1, "the token is printed once"
    assert "role assistant" in lines[0]
    assert "'copilot'" in lines[0]
    assert token not in err

    with TestClient(create_app(Settings())) as client:
        ok = client.get(
            "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(token)
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["items"] == []
        wrong = client.get(
            "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(token + "x")
        )
        assert_problem(wrong, 401, "unauthenticated")
    assert data_dir.is_dir()


def test_tokens_create_for_a_user_binds_the_token_to_that_user(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, assistant = create_token(capsys, "--role", "assistant")
    code, out, err = run(capsys, "tokens", "create", "--role", "user", "--user", "alice")
    assert code == 0, err
    created = CREATED_LINE.match(out.splitlines()[0])
    assert created
    assert (created.group(2), created.group(3)) == ("user", "alice")
    alice = out.splitlines()[-1]
    assert TOKEN_LINE.match(alice)

    with TestClient(create_app(Settings())) as client:
        mine = write_memory(client, assistant, user_id="alice", content="alice likes jazz")
        write_memory(client, assistant, user_id="bob", content="bob likes opera")
        response = client.get("/v1/me/memories", headers=bearer(alice))
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [(item["id"], item["content"]) for item in items] == [
            (mine["id"], "alice likes jazz")
        ]


def test_tokens_create_user_role_without_user_exits_2_with_a_message_and_creates_nothing(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "tokens", "create", "--role", "user")
    assert code == 2
    assert "--user" in err
    assert "mst_" not in out
    _, listed, _ = run(capsys, "tokens", "list")
    assert "tok_" not in listed


def test_tokens_create_assistant_role_with_a_user_exits_2(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "tokens", "create", "--role", "assistant", "--user", "alice")
    assert code == 2
    assert "--user" in err
    assert "mst_" not in out


@pytest.mark.parametrize(
    "bad_user", ["al ice", "../etc", "", "x" * 129, "alice;drop", "..", "Alice"]
)
def test_tokens_create_refuses_a_malformed_user_id_in_argparse(
    data_dir: Path, capsys: pytest.CaptureFixture[str], bad_user: str
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["tokens", "create", "--role", "user", "--user", bad_user])
    assert excinfo.value.code == 2
    assert "user ids are 1-128 characters of lower-case" in capsys.readouterr().err
    assert not data_dir.exists(), "nothing is opened or created before the arguments parse"


def test_tokens_list_shows_ids_and_prefixes_but_never_a_whole_token(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    issued = [
        create_token(capsys, "--role", "assistant", "--name", "copilot"),
        create_token(capsys, "--role", "user", "--user", "alice"),
        create_token(capsys, "--role", "compliance"),
    ]
    code, out, err = run(capsys, "tokens", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "id",
        "role",
        "user",
        "name",
        "prefix",
        "created",
        "expires",
        "status",
    ]
    assert len(lines) == 1 + len(issued)
    for token_id, token in issued:
        row = next(line for line in lines if line.startswith(token_id))
        assert token[:12] in row
        assert token not in out
        assert token[12:20] not in out, "nothing past the display prefix is shown"
        assert row.endswith("active")
    assert "alice" in next(line for line in lines if line.startswith(issued[1][0]))
    assert "copilot" in next(line for line in lines if line.startswith(issued[0][0]))


def test_a_token_created_with_expires_in_is_refused_from_then_on_and_listed_so(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with freeze_time("2026-12-01T12:00:00Z"):
        token_id, token = create_token(capsys, "--role", "assistant", "--expires-in", "2h")
        _, lasting = create_token(capsys, "--role", "assistant")
        with TestClient(create_app(Settings())) as client:
            url, params = "/v1/users/alice/memories", {"purpose": PURPOSE}
            assert client.get(url, params=params, headers=bearer(token)).status_code == 200
            with freeze_time("2026-12-01T13:59:59Z"):
                assert client.get(url, params=params, headers=bearer(token)).status_code == 200
            with freeze_time("2026-12-01T14:00:00Z"):
                refused = client.get(url, params=params, headers=bearer(token))
                assert_problem(refused, 401, "unauthenticated")
                assert "expired" in refused.json()["detail"]
                assert client.get(url, params=params, headers=bearer(lasting)).status_code == 200
                _, listed, _ = run(capsys, "tokens", "list")
    row = next(line for line in listed.splitlines() if line.startswith(token_id))
    assert "2026-12-01 14:00:00" in row and row.endswith("expired")


@pytest.mark.parametrize("bad", ["0d", "12", "h", "-3h", "2 weeks", "1000000d"])
def test_tokens_create_refuses_a_malformed_lifetime(
    data_dir: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["tokens", "create", "--role", "assistant", f"--expires-in={bad}"])
    assert excinfo.value.code == 2
    assert "like 90d, 12h, 30m or 3600s" in capsys.readouterr().err
    assert not data_dir.exists()


def test_tokens_revoke_makes_the_token_fail_on_the_very_next_request(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_id, token = create_token(capsys, "--role", "assistant")
    _, other = create_token(capsys, "--role", "assistant")
    with TestClient(create_app(Settings())) as client:
        url, params = "/v1/users/alice/memories", {"purpose": PURPOSE}
        assert client.get(url, params=params, headers=bearer(token)).status_code == 200

        code, out, err = run(capsys, "tokens", "revoke", token_id)  # another process's work
        assert code == 0, err
        assert out.strip() == f"revoked {token_id}"

        assert_problem(
            client.get(url, params=params, headers=bearer(token)), 401, "unauthenticated"
        )
        assert client.get(url, params=params, headers=bearer(other)).status_code == 200
    _, listed, _ = run(capsys, "tokens", "list")
    assert next(line for line in listed.splitlines() if line.startswith(token_id)).endswith(
        "revoked"
    )


def test_tokens_revoke_of_an_unknown_or_already_revoked_id_exits_1(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store()
    code, out, err = run(capsys, "tokens", "revoke", "tok_0000000000000000")
    assert code == 1
    assert "no active token tok_0000000000000000" in err
    assert "revoked" not in out

    token_id, _ = create_token(capsys, "--role", "admin")
    assert run(capsys, "tokens", "revoke", token_id)[0] == 0
    code, _, err = run(capsys, "tokens", "revoke", token_id)
    assert code == 1
    assert token_id in err


# -- keys -------------------------------------------------------------------------------------


def test_keys_status_lists_versions_and_how_many_keys_each_wraps(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store()
    code, out, err = run(capsys, "keys", "status")
    assert code == 0, err
    assert out.splitlines() == ["KEK v1 (current): wraps 0 data key(s)"]
    make_data_keys("alice", "bob")
    code, out, _ = run(capsys, "keys", "status")
    assert out.splitlines() == ["KEK v1 (current): wraps 2 data key(s)"]


def test_keys_rotate_reports_how_many_keys_it_rewrapped(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_data_keys("alice", "bob", "carol")
    code, out, err = run(capsys, "keys", "rotate")
    assert code == 0, err
    assert out.strip() == "KEK v2 is current; rewrapped 3 data key(s)"
    _, status, _ = run(capsys, "keys", "status")
    assert status.splitlines() == [
        "KEK v1: wraps 0 data key(s)",
        "KEK v2 (current): wraps 3 data key(s)",
    ]


def test_keys_retire_v1_is_refused_before_rotate_and_destroys_it_after(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_data_keys("alice")
    code, out, err = run(capsys, "keys", "retire", "1")
    assert code == 1
    assert "cannot retire KEK v1: the current KEK version cannot be retired" in err
    runtime = open_runtime(Settings())  # a new version that has not rewrapped anything yet
    try:
        runtime.keyring.provider.add_version()
    finally:
        runtime.close()
    code, out, err = run(capsys, "keys", "retire", "1")
    assert code == 1
    assert "KEK version 1 still wraps 1 data key(s); run `memory-store keys rotate` first" in err
    _, status, _ = run(capsys, "keys", "status")
    assert "KEK v1: wraps 1 data key(s)" in status

    assert run(capsys, "keys", "rotate")[0] == 0
    code, out, err = run(capsys, "keys", "retire", "1")
    assert code == 0, err
    assert out.strip() == "KEK v1 destroyed"
    _, status, _ = run(capsys, "keys", "status")
    assert status.splitlines() == [
        "KEK v2: wraps 0 data key(s)",
        "KEK v3 (current): wraps 1 data key(s)",
    ]

    runtime = open_runtime(Settings())  # and the key is still usable
    try:
        assert runtime.keyring.key_for_read("alice") is not None
    finally:
        runtime.close()


def test_keys_retire_of_the_current_version_is_refused_and_keeps_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store()
    code, _, err = run(capsys, "keys", "retire", "1")
    assert code == 1
    assert "current KEK version cannot be retired" in err
    _, status, _ = run(capsys, "keys", "status")
    assert status.splitlines() == ["KEK v1 (current): wraps 0 data key(s)"]


def test_a_missing_key_file_with_existing_keys_makes_every_command_refuse_to_start(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_data_keys("alice")
    key_file = data_dir / "kek.json"
    key_file.unlink()
    code, out, err = run(capsys, "tokens", "list")
    assert code == 1
    assert "refusing to start" in err
    assert str(key_file) in err
    assert out == ""
    assert not key_file.exists(), "the command must not make a new key file"


# -- the real console script ------------------------------------------------------------------


def test_console_script_prints_the_token_as_the_last_stdout_line(tmp_path: Path) -> None:
    # Only the test's own settings (on PostgreSQL, the database URLs) reach the command.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MEMORY_STORE_") or k.endswith("_URL")
    }
    env["MEMORY_STORE_DATA_DIR"] = str(tmp_path / "var")
    script = console_script()
    assert script.exists(), f"no console script beside {sys.executable}: is the project installed?"
    result = subprocess.run(
        [str(script), "tokens", "create", "--role", "assistant"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.splitlines()[-1]
    assert TOKEN_LINE.match(token), result.stdout
    assert token not in result.stderr

    with TestClient(create_app(Settings(data_dir=tmp_path / "var"))) as client:
        response = client.get(
            "/v1/users/alice/memories", params={"purpose": PURPOSE}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
