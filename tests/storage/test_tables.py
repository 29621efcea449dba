"""Each table is declared once (storage/tables.py, for Alembic) and read and written through
one row type: the row types' fields are the tables' columns, in order, so that a column added
to one and not the other fails here rather than in a query."""

from __future__ import annotations

from dataclasses import fields

import pytest
from sqlalchemy import Table

from audit import AuditRecord
from memory_store.storage import tables
from memory_store.storage.audit_trail import RECORD_COLUMNS, StoredCheckpoint
from memory_store.storage.consents import ConsentEventRow, SettingsRow
from memory_store.storage.keystore import StoredKey
from memory_store.storage.memories import MEMORY_COLUMNS, MemoryRow, MemoryVersionRow
from memory_store.storage.tokens import TokenRow


def columns(table: Table) -> list[str]:
    return [column.name for column in table.columns]


def names(row_type: type) -> list[str]:
    return [field.name for field in fields(row_type)]


@pytest.mark.parametrize(
    ("row_type", "table", "left_out"),
    [
        (MemoryRow, tables.Memory.__table__, ()),  # type: ignore[attr-defined]
        (MemoryVersionRow, tables.MemoryVersion.__table__, ()),  # type: ignore[attr-defined]
        (TokenRow, tables.ApiToken.__table__, ()),  # type: ignore[attr-defined]
        # The event's surrogate key is the database's; nothing reads it.
        (ConsentEventRow, tables.ConsentEvent.__table__, ("id",)),  # type: ignore[attr-defined]
        (SettingsRow, tables.UserSettings.__table__, ()),  # type: ignore[attr-defined]
        # When a key was made is kept for the operator; the service never reads it.
        (StoredKey, tables.data_keys, ("created_at",)),
        (StoredCheckpoint, tables.AuditCheckpointRow.__table__, ()),  # type: ignore[attr-defined]
    ],
)
def test_a_row_type_has_its_tables_columns_in_order(
    row_type: type, table: Table, left_out: tuple[str, ...]
) -> None:
    assert names(row_type) == [name for name in columns(table) if name not in left_out]


def test_the_memory_statements_name_the_row_types_columns() -> None:
    assert list(MEMORY_COLUMNS) == columns(tables.Memory.__table__)  # type: ignore[attr-defined]


def test_an_audit_record_is_stored_column_for_column() -> None:
    stored = columns(tables.AuditRow.__table__)  # type: ignore[attr-defined]
    assert list(RECORD_COLUMNS) == names(AuditRecord)
    assert set(RECORD_COLUMNS) == set(stored)
