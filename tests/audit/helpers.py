"""Builders shared by the audit tests: random records, sealed chains, exports."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from audit.chain import GENESIS, seal
from audit.export import checkpoint_line, header_line, record_line
from audit.merkle import MerkleLog
from audit.note import TreeCheckpoint
from audit.records import OUTCOMES, AuditRecord
from audit.signing import SigningKey, key_id
from audit.verify import AnyCheckpoint, VerificationResult, Verifier

AT = "2026-11-26T10:00:00.000000Z"

# Any unicode, including lone surrogates, control characters and line separators.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
OPTIONAL_TEXT = st.none() | TEXT
MEMORY_IDS = st.lists(TEXT, max_size=4).map(tuple)
RESULT_COUNT = st.none() | st.integers(min_value=-(2**70), max_value=2**70)

RECORDS = st.builds(
    AuditRecord,
    at=TEXT,
    actor_id=TEXT,
    actor_role=TEXT,
    request_id=TEXT,
    action=TEXT,
    outcome=st.sampled_from(sorted(OUTCOMES)),
    subject=OPTIONAL_TEXT,
    memory_ids=MEMORY_IDS,
    target=OPTIONAL_TEXT,
    purpose=OPTIONAL_TEXT,
    reason=OPTIONAL_TEXT,
    result_count=RESULT_COUNT,
)


def new_key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate())


def simple_record(number: int) -> AuditRecord:
    return AuditRecord(
        at=AT,
        actor_id=f"svc-{number}",
        actor_role="service",
        request_id=f"req-{number}",
        action="memory.read",
        outcome="allowed" if number % 2 else "denied",
        subject=f"pseud-{number}",
        memory_ids=(f"m-{number}", f"m-{number + 1}"),
        purpose="personalization",
        reason=None if number % 2 else "no consent",
        result_count=number,
    )


def chain(records: Sequence[AuditRecord], *, start_prev: str = GENESIS) -> list[AuditRecord]:
    """Seal records into a chain numbered from 1, as the writer does."""
    sealed: list[AuditRecord] = []
    prev = start_prev
    for seq, record in enumerate(records, start=1):
        placed = seal(record, seq=seq, prev=prev)
        sealed.append(placed)
        prev = placed.hash
    return sealed


def tree_of(records: Sequence[AuditRecord]) -> MerkleLog:
    tree = MerkleLog()
    for record in records:
        tree.append(bytes.fromhex(record.hash))
    return tree


def sign_tree(records: Sequence[AuditRecord], signing_key: SigningKey, size: int) -> TreeCheckpoint:
    """The tlog-checkpoint the service would cut over the first `size` records."""
    return signing_key.sign_tree(size, tree_of(records[:size]).root())


def verify(
    records: Sequence[AuditRecord],
    signing_key: SigningKey,
    checkpoints: Sequence[AnyCheckpoint] = (),
    *,
    stored: Sequence[AnyCheckpoint] = (),
    allow_unanchored: bool = True,
) -> VerificationResult:
    """Verify records against `checkpoints` kept outside (trusted) and `stored` ones (checked,
    trusting none). Unanchored is allowed unless asked: most tests are about the chain."""
    verifier = Verifier(signing_key.public_key, allow_unanchored=allow_unanchored)
    for record in records:
        verifier.add_record(record)
    for checkpoint in checkpoints:
        verifier.trust(checkpoint)
    for checkpoint in stored:
        verifier.add_checkpoint(checkpoint)
    return verifier.result()


def export_lines(
    records: Sequence[AuditRecord],
    checkpoints: Sequence[AnyCheckpoint],
    signing_key: SigningKey,
) -> list[str]:
    """A JSON Lines export: header, then each record, each checkpoint after the record it covers."""
    by_seq: dict[int, list[AnyCheckpoint]] = {}
    for checkpoint in checkpoints:
        by_seq.setdefault(checkpoint.seq, []).append(checkpoint)
    lines = [
        header_line(
            exported_at=AT, key_id=key_id(signing_key.public_key), origin=signing_key.origin
        )
    ]
    for record in records:
        lines.append(record_line(record))
        lines += [checkpoint_line(checkpoint) for checkpoint in by_seq.get(record.seq, [])]
    return lines
