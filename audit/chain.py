"""The hash chain: each record's hash covers its own fields and the previous record's hash.

hash(n) = SHA-256("memory-store/audit/record/v1" || 0x00 || canonical(body(n))), where body(n)
holds prev = hash(n-1) (GENESIS for the first). Changing, removing, inserting or reordering any
record changes every hash after it.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from audit.records import AuditRecord, canonical

RECORD_DOMAIN = b"memory-store/audit/record/v1\x00"
GENESIS = "0" * 64


def chain_hash(record: AuditRecord) -> str:
    """The hash a record must carry, given its fields and its `prev`."""
    return hashlib.sha256(RECORD_DOMAIN + canonical(record.body())).hexdigest()


def seal(record: AuditRecord, *, seq: int, prev: str) -> AuditRecord:
    """Give a record its place in the chain: sequence number, previous hash, own hash."""
    # The body of the placed record, without building the placed record twice.
    body = record.body()
    body["seq"] = seq
    body["prev"] = prev
    digest = hashlib.sha256(RECORD_DOMAIN + canonical(body)).hexdigest()
    return replace(record, seq=seq, prev=prev, hash=digest)
