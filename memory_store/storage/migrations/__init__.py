"""Alembic migrations for the three databases: memories, key store, audit trail.

One script folder holds three independent branches, labelled `memory`, `keystore` and
`audit`; each database carries its own version table and is upgraded to its branch's head.
"""
