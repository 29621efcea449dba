"""Alembic owns the schema: an empty database goes from the first revision to head, and the
result is exactly what the models describe. Runs on SQLite and, under make test, PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from memory_store.cli import main
from memory_store.config import Settings
from memory_store.runtime import open_engines, open_runtime
from memory_store.storage import migrate as schema
from tests.postgres import Cluster


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", retention_sweep_seconds=0, migrate_on_start=False)


@pytest.mark.parametrize("branch", schema.BRANCHES)
def test_an_empty_database_upgrades_from_the_first_revision_to_head(
    settings: Settings, branch: str
) -> None:
    engine = open_engines(settings)[branch]
    try:
        assert schema.current(engine, branch) is None
        schema.upgrade(engine, branch, schema.first(branch))
        assert schema.current(engine, branch) == schema.first(branch)
        schema.upgrade(engine, branch)  # every later revision, in order
        assert schema.current(engine, branch) == schema.head(branch)
        assert set(inspect(engine).get_table_names()) >= set(schema.target_metadata(branch).tables)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": f"alembic_version_{branch}", "compare_type": True}
            )
            differences = compare_metadata(context, schema.target_metadata(branch))
        assert differences == [], differences  # the migrations build what the models say
    finally:
        engine.dispose()


def test_a_start_without_migrations_refuses_an_old_schema_and_db_upgrade_fixes_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(schema.SchemaOutOfDate, match="memory-store db upgrade"):
        open_runtime(settings)
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MEMORY_STORE_MIGRATE_ON_START", "false")
    assert main(["tokens", "list"]) == 1
    assert "no store in" in capsys.readouterr().err, "an empty database is no store"
    assert main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["database", "at", "head"]
    for branch in schema.BRANCHES:
        assert [branch, schema.head(branch), schema.head(branch)] in rows
    open_runtime(settings).close()  # now it starts


def test_upgrading_twice_changes_nothing(settings: Settings) -> None:
    engines = open_engines(settings)
    try:
        schema.upgrade_all(engines)
        schema.upgrade_all(engines)
        assert all(schema.current(engines[b], b) == schema.head(b) for b in schema.BRANCHES)
    finally:
        for engine in engines.values():
            engine.dispose()


def test_a_command_creates_a_brand_new_store_but_never_migrates_an_existing_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pg_cluster: Cluster | None,
) -> None:
    """`tokens`, `keys`, `audit`... may run beside a server: `tokens create` sets up a store
    that does not exist yet (saying so), but no command migrates an existing database's
    schema: that is `db upgrade`'s job (and the server's)."""
    for name in ("MEMORY_STORE_MIGRATE_ON_START", "MEMORY_STORE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(fresh))
    # A brand-new store: created at the current schema.
    assert main(["tokens", "create", "--role", "admin"]) == 0
    engines = open_engines(Settings(data_dir=fresh))
    try:
        assert all(schema.current(engines[b], b) == schema.head(b) for b in schema.BRANCHES)
    finally:
        for engine in engines.values():
            engine.dispose()

    if pg_cluster is not None:  # another three empty schemas for the second store
        urls = pg_cluster.fresh_urls()
        monkeypatch.setenv("MEMORY_STORE_DATABASE_URL", urls["database"])
        monkeypatch.setenv("MEMORY_STORE_KEYSTORE_URL", urls["keystore"])
        monkeypatch.setenv("MEMORY_STORE_AUDIT_DATABASE_URL", urls["audit"])
    stale = Settings(data_dir=tmp_path / "stale", retention_sweep_seconds=0)
    engines = open_engines(stale)
    try:
        schema.upgrade(engines["memory"], "memory", schema.first("memory"))
        schema.upgrade(engines["keystore"], "keystore")
        schema.upgrade(engines["audit"], "audit")
        assert schema.first("memory") != schema.head("memory")  # there is a later revision
        monkeypatch.setenv("MEMORY_STORE_DATA_DIR", str(stale.data_dir))
        capsys.readouterr()
        assert main(["tokens", "list"]) == 1
        assert "run `memory-store db upgrade`" in capsys.readouterr().err
        assert schema.current(engines["memory"], "memory") == schema.first("memory")  # untouched
        open_runtime(stale).close()  # the server's start does migrate (MIGRATE_ON_START)
        assert schema.current(engines["memory"], "memory") == schema.head("memory")
        assert main(["tokens", "list"]) == 0
    finally:
        for engine in engines.values():
            engine.dispose()
