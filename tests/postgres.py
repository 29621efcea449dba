"""A throwaway PostgreSQL cluster for the test suite, from the installed Debian binaries.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is created and
started as the `postgres` user. It listens on 127.0.0.1 only, on a free port, with fsync off
(it is thrown away), and is stopped when the test session ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg


def binaries() -> Path | None:
    """The newest installed PostgreSQL bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    bindir: Path
    root: Path
    port: int
    as_postgres: bool

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def _run(self, *argv: str) -> None:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if self.as_postgres:
            command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            f"'{options}'",
            "-w",
            "-l",
            str(self.root / "log"),
            "start",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                    conn.execute("CREATE DATABASE memory_store")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "memory_store") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def fresh_urls(self) -> dict[str, str]:
        """Three new, empty schemas (memories, key store, audit trail), as database URLs."""
        stem = "t" + uuid.uuid4().hex[:12]
        names = {"database": f"{stem}_data", "keystore": f"{stem}_keys", "audit": f"{stem}_audit"}
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            for schema in names.values():
                conn.execute(f'CREATE SCHEMA "{schema}"')
        base = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/memory_store"
        return {role: f"{base}?options=-csearch_path%3D{schema}" for role, schema in names.items()}


def start_cluster() -> Cluster | None:
    """Start a cluster, or None when no PostgreSQL binaries are installed."""
    bindir = binaries()
    if bindir is None:
        return None
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="memory-store-pg-"))
    if as_postgres:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bindir=bindir, root=root, port=_free_port(), as_postgres=as_postgres)
    cluster.start()
    return cluster
