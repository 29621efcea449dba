"""What `pip install .` gives: a wheel with the server, the command, its data (UI, policies,
migrations) and the licence; and a client that imports none of the server."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` would build (hatchling, the build backend pyproject names)."""
    pytest.importorskip("hatchling", reason="hatchling (the dev extra) builds the wheel")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("memory_store-*.whl")
    return built


def test_the_wheel_holds_the_server_the_command_its_data_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "memory_store/cli.py",
        "memory_store/app.py",
        "memory_store/client/__init__.py",
        "memory_store/ui/index.html",
        "memory_store/_policies/catalogue.toml",
        "audit/__init__.py",
    ):
        assert expected in names, expected
    assert any(name.startswith("memory_store/storage/migrations/") for name in names)
    assert not any(name.startswith("tests/") for name in names)
    # Nothing a merge, an editor or a run leaves behind (an .orig copy shipped once).
    strays = (".orig", ".rej", ".bak", ".pyc", ".db", "~")
    assert [name for name in names if name.endswith(strays)] == []
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "memory-store = memory_store.cli:main" in entry_points
    assert any(n.startswith(f"{dist_info}/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata


def test_the_installed_wheel_runs_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    """Installed (without its dependencies, which this environment has) into a folder of its
    own and run from an unrelated one: the command finds its policies and migrations inside
    the package, and keeps its store in the data dir, not the working directory."""
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            target,
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "MEMORY_STORE_DATA_DIR": str(tmp_path / "store"),
    }
    for name in (
        "MEMORY_STORE_DATABASE_URL",
        "MEMORY_STORE_KEYSTORE_URL",
        "MEMORY_STORE_AUDIT_DATABASE_URL",
    ):
        env.pop(name, None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    where = run("-c", "import memory_store; print(memory_store.__file__)")
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    version = run("-m", "memory_store", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("memory-store ")
    created = run("-m", "memory_store", "tokens", "create", "--role", "admin")
    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines()[-1].startswith("mst_")
    assert (tmp_path / "store" / "memory.db").is_file()
    assert list(elsewhere.iterdir()) == []


def test_the_client_imports_none_of_the_server() -> None:
    """An application that only calls the service loads httpx and pydantic, not the server's
    web framework, databases or policy engine."""
    probe = (
        "import sys\n"
        "import memory_store.client\n"
        "server = {'fastapi', 'starlette', 'sqlalchemy', 'sqlmodel', 'alembic', 'casbin',\n"
        "          'psycopg', 'mcp', 'uvicorn', 'cryptography', 'structlog'}\n"
        "print(sorted(server & {name.split('.')[0] for name in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]", done.stdout
