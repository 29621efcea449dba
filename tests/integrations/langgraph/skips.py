"""Why a copied LangGraph store test is skipped: each reason names what memory-store
deliberately does not do."""

from __future__ import annotations

import pytest

VECTOR = pytest.mark.skip(
    reason="vector index (embeddings, IndexConfig): memory-store ranks `query` by BM25 recall"
)
CROSS_USER = pytest.mark.skip(
    reason="listing or searching across users: a memory-store namespace starts with one user id"
)
SQLITE_INTERNALS = pytest.mark.skip(
    reason="tests SqliteStore's own SQL and migrations, which memory-store does not have"
)
USER_ID = pytest.mark.skip(
    reason="the first label is a user id: lower-case a-z, digits and . _ @ - (no 'Foo', 'a%b')"
)
FILTER_SQL = pytest.mark.skip(
    reason="filters are matched after decryption, never as SQL: no 'Invalid filter key' error"
)
JSON_NUMBERS = pytest.mark.skip(
    reason="the API speaks JSON, which has no infinity or NaN to filter by"
)
