"""Reading the whole trail back: verify it against the signing key and the checkpoints kept
outside the database, export it as JSON Lines that the offline verifier (`python -m audit
verify`) accepts, or prove that one record is in a signed tree."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from audit import (
    AnyCheckpoint,
    AuditRecord,
    Checkpoint,
    MerkleLog,
    SigningKey,
    TreeCheckpoint,
    VerificationResult,
    Verifier,
)
from audit.export import checkpoint_line, header_line, note_line, record_line
from memory_store.clock import utc_now
from memory_store.domain import Progress
from memory_store.storage.audit_trail import AuditTrailStore, StoredCheckpoint
from memory_store.trail.times import format_time


def stored_checkpoint(stored: StoredCheckpoint) -> AnyCheckpoint:
    """The checkpoint a row holds; raises ValueError on a note that does not parse."""
    if stored.note is not None:
        return TreeCheckpoint.parse(stored.note)
    return Checkpoint(stored.seq, stored.hash, stored.at, stored.key_id, stored.signature)


def verify_stored(
    store: AuditTrailStore,
    signing_key: SigningKey,
    trusted: Sequence[AnyCheckpoint],
    *,
    allow_unanchored: bool = False,
    unreadable: str | None = None,
    progress: Progress | None = None,
) -> VerificationResult:
    """Verify the stored trail: its chain, the checkpoints it holds (checked, trusting none),
    and the checkpoints kept outside it (`trusted`: they anchor it). `unreadable`: why the
    trusted checkpoints could not all be read, which fails the verification."""
    verifier = Verifier(signing_key.public_key, allow_unanchored=allow_unanchored)
    if unreadable is not None:
        verifier.reject(unreadable)
    for record in store.iter_records():
        verifier.add_record(record)
        if progress is not None:
            progress(1)
    for stored in store.checkpoints():
        try:
            verifier.add_checkpoint(stored_checkpoint(stored))
        except ValueError:
            verifier.reject(f"the stored checkpoint at {stored.seq} is malformed", seq=stored.seq)
    for checkpoint in trusted:
        verifier.trust(checkpoint)
    return verifier.result()


def export_lines(store: AuditTrailStore, signing_key: SigningKey) -> Iterator[str]:
    yield header_line(
        exported_at=format_time(utc_now()), key_id=signing_key.key_id, origin=signing_key.origin
    )
    for record in store.iter_records():
        yield record_line(record)
    for stored in store.checkpoints():  # as stored: the verifier judges them
        if stored.note is not None:
            yield note_line(stored.note)
        else:
            yield checkpoint_line(stored_checkpoint(stored))


@dataclass(frozen=True)
class InclusionProof:
    """Record `record.seq` is leaf seq - 1 of the tree the signed `checkpoint` names: hash the
    leaf (audit.leaf_hash of the record's chain hash) up the `path` to the note's root."""

    record: AuditRecord
    tree_size: int
    path: list[bytes]
    checkpoint: str


def prove_inclusion(
    store: AuditTrailStore, seq: int, *, tree_size: int | None = None
) -> InclusionProof | None:
    """The proof that record `seq` is in the latest signed tree holding it (or the signed tree
    of `tree_size`); None when there is no such record or signed tree. Reads the hashes of
    the tree's records: O(tree size)."""
    stored = store.latest_tree_checkpoint(covering=seq)
    if tree_size is not None:
        stored = store.tree_checkpoint(tree_size) if tree_size >= seq else None
    record = store.record(seq)
    if stored is None or stored.note is None or record is None:
        return None
    tree = MerkleLog()
    try:
        for digest in store.hashes(after=0, through=stored.seq):
            tree.append(digest)
    except ValueError:
        return None  # a stored hash that is not one: the trail is broken, verify says where
    if tree.size != stored.seq:
        return None  # records missing: no proof can be made against that tree
    path = tree.inclusion_proof(seq - 1, stored.seq)
    return InclusionProof(record, stored.seq, path, stored.note)
