"""Storage: every line of SQL in the service. Engines (engines), the one access style (rawdb),
the tables Alembic migrates (tables, migrate, migrations/), one module of SQL per table group
(memories, consents, tokens, keystore, audit_trail), the group-committing writers
(group_commit, audit_writer) and the eraser of forgotten users' rows (eraser)."""
