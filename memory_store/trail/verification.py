"""Reading the whole trail back: verify it against the signing key, or export it as JSON Lines
that the offline verifier (`python -m audit verify`) accepts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from audit import Checkpoint, SigningKey, VerificationResult, Verifier
from audit.export import checkpoint_line, header_line, record_line
from memory_store.clock import utc_now
from memory_store.storage.audit_trail import AuditTrailStore
from memory_store.trail.times import format_time


def verify_stored(
    store: AuditTrailStore, signing_key: SigningKey, kept: Sequence[Checkpoint] = ()
) -> VerificationResult:
    """Verify the stored trail against the service's key, its stored checkpoints, and any
    checkpoints kept elsewhere (those are what catch a trail cut short)."""
    verifier = Verifier(signing_key.public_key)
    for record in store.iter_records():
        verifier.add_record(record)
    for checkpoint in [*store.checkpoints(), *kept]:
        verifier.add_checkpoint(checkpoint)
    return verifier.result()


def export_lines(store: AuditTrailStore, signing_key: SigningKey) -> Iterator[str]:
    yield header_line(exported_at=format_time(utc_now()), key_id=signing_key.key_id)
    for record in store.iter_records():
        yield record_line(record)
    for checkpoint in store.checkpoints():
        yield checkpoint_line(checkpoint)
