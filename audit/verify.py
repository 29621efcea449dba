"""The verifier: walks the records in order and checks the hash chain, then every checkpoint:
its signature, and that the trail extends it (its Merkle root at the checkpoint's size is the
signed one; for a legacy checkpoint, the record at its seq has the signed hash).

Only checkpoints given from outside (`trust`) anchor the trail: the database, or an export
of it, cannot vouch for itself, since whoever can write it can also delete what it holds. The
checkpoints it holds are still checked (`add_checkpoint`), and any that contradicts the trail
fails it. The result says how far the trail is anchored and how many records follow unanchored;
nothing anchored is a failure unless the caller accepts it (`allow_unanchored`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.chain import GENESIS, chain_hash
from audit.export import FORMATS, parse_checkpoint
from audit.merkle import MerkleLog
from audit.note import TreeCheckpoint, key_id, log_origin
from audit.records import OUTCOMES, AuditRecord
from audit.signing import Checkpoint

AnyCheckpoint = Checkpoint | TreeCheckpoint


@dataclass
class VerificationResult:
    ok: bool
    records: int
    checkpoints: int  # every distinct checkpoint checked, trusted or not
    last_seq: int
    last_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    trusted_checkpoints: int = 0  # those given from outside the trail
    anchored_through: int = 0  # the last record a trusted checkpoint covers
    origin: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def anchored(self) -> bool:
        return self.anchored_through > 0

    @property
    def unanchored_tail(self) -> int:
        """Records after the last anchored one: intact as a chain, vouched for by nobody."""
        return max(self.last_seq - self.anchored_through, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "origin": self.origin,
            "trusted_checkpoints": self.trusted_checkpoints,
            "anchored": self.anchored,
            "anchored_through": self.anchored_through,
            "unanchored_tail": self.unanchored_tail,
        }


class Verifier:
    """Feed records in sequence order, and checkpoints in any order; `result()` says whether
    all hold. `trust` the checkpoints kept outside the trail (a witness's)."""

    def __init__(self, public_key: Ed25519PublicKey, *, allow_unanchored: bool = False) -> None:
        self._public_key = public_key
        self._origin = log_origin(public_key)
        self._allow_unanchored = allow_unanchored
        self._expected_seq = 1
        self._prev = GENESIS
        # Every accepted record's hash, and the Merkle tree over them: checkpoints may come
        # after the records they cover, at any size.
        self._tree = MerkleLog()
        self._records = 0
        self._checkpoints: list[tuple[AnyCheckpoint, bool]] = []
        self._failures: list[tuple[int | None, str]] = []
        self._chain_broken = False  # a failure at a record: the records after it are not read

    def _fail(self, seq: int | None, problem: str) -> None:
        self._failures.append((seq, problem))
        self._chain_broken = self._chain_broken or seq is not None

    def add_record(self, record: AuditRecord) -> None:
        if self._chain_broken:
            return
        self._records += 1
        if record.seq != self._expected_seq:
            if record.seq > self._expected_seq:
                self._fail(
                    self._expected_seq,
                    f"record {self._expected_seq} is missing (the next one is {record.seq})",
                )
            else:
                # A genuine (or validly sealed) record for an earlier place forks or replays the
                # chain there; anything else is this place's record with its seq altered.
                earlier = GENESIS if record.seq == 1 else self._hash_at(record.seq - 1)
                forks = record.prev == earlier and chain_hash(record) == record.hash
                at = record.seq if forks else self._expected_seq
                self._fail(
                    at,
                    f"record {at} is out of order or repeated "
                    f"(found seq {record.seq} where {self._expected_seq} was expected)",
                )
            return
        if record.prev != self._prev:
            self._fail(record.seq, f"record {record.seq} does not link to the record before it")
            return
        if chain_hash(record) != record.hash:
            self._fail(record.seq, f"record {record.seq} was altered: its hash does not match")
            return
        if record.outcome not in OUTCOMES:
            self._fail(record.seq, f"record {record.seq} has an unknown outcome")
            return
        self._tree.append(bytes.fromhex(record.hash))  # hex: it equals a hexdigest
        self._prev = record.hash
        self._expected_seq += 1

    def _hash_at(self, seq: int) -> str | None:
        """The hash of accepted record `seq`, or None if there is none."""
        if not 1 <= seq <= self._tree.size:
            return None
        return self._tree.leaf_data(seq - 1).hex()

    def fail_next(self, problem: str) -> None:
        """The export is unreadable at the next record's place."""
        self._fail(self._expected_seq, problem)

    def reject(self, problem: str, *, seq: int | None = None) -> None:
        """A failure found outside the records: of the whole (a header naming another key, an
        unreadable anchor), or at `seq` (a stored checkpoint that does not parse)."""
        self._fail(seq, problem)

    def add_checkpoint(self, checkpoint: AnyCheckpoint) -> None:
        """A checkpoint the trail itself holds: checked, but it anchors nothing."""
        self._checkpoints.append((checkpoint, False))

    def trust(self, checkpoint: AnyCheckpoint) -> None:
        """A checkpoint kept outside the trail: what anchors it."""
        self._checkpoints.append((checkpoint, True))

    def result(self) -> VerificationResult:
        last_seq = self._expected_seq - 1
        chain_bad = min((s for s, _ in self._failures if s is not None), default=None)
        intact_through = 0  # the largest size a checkpoint has shown intact so far
        anchored_through = 0
        failures = list(self._failures)
        # The same checkpoint often comes twice (the database's copy, the witness's): checked
        # once, trusted if any copy is.
        distinct: dict[AnyCheckpoint, bool] = {}
        for checkpoint, trusted in self._checkpoints:
            distinct[checkpoint] = distinct.get(checkpoint, False) or trusted
        for checkpoint, trusted in sorted(distinct.items(), key=lambda c: c[0].seq):
            problem = self._check(checkpoint, last_seq, chain_bad, intact_through)
            if problem is not None:
                failures.append(problem)
                break
            if checkpoint.seq <= last_seq and (chain_bad is None or checkpoint.seq < chain_bad):
                intact_through = checkpoint.seq
                if trusted:
                    anchored_through = checkpoint.seq
        trusted_count = sum(distinct.values())
        if not failures and not trusted_count and not self._allow_unanchored:
            failures.append(
                (None, "nothing is anchored: no checkpoint kept outside the trail was given")
            )
        # The earliest place named wins; a failure of the whole only when no place is named.
        failure = min(failures, key=lambda f: (f[0] is None, f[0] or 0), default=None)
        return VerificationResult(
            ok=failure is None,
            records=self._records,
            checkpoints=len(distinct),
            last_seq=last_seq,
            last_hash=self._prev,
            first_bad_seq=failure[0] if failure else None,
            problem=failure[1] if failure else None,
            trusted_checkpoints=trusted_count,
            anchored_through=anchored_through,
            origin=self._origin,
        )

    def _check(
        self, checkpoint: AnyCheckpoint, last_seq: int, chain_bad: int | None, intact: int
    ) -> tuple[int | None, str] | None:
        """What is wrong with one checkpoint against the trail, if anything."""
        seq = checkpoint.seq
        if isinstance(checkpoint, TreeCheckpoint):
            if checkpoint.origin != self._origin:
                return seq, f"checkpoint {seq} is of another log ({checkpoint.origin[:80]!r})"
            signed = checkpoint.signed_by(self._origin, self._public_key)
        else:
            signed = checkpoint.verify(self._public_key)
        if not signed:
            return seq, f"checkpoint at {seq} has a bad signature (or none by this log's key)"
        if chain_bad is not None and seq >= chain_bad:
            return None  # the chain already failed at or before it
        if seq > last_seq:
            return (
                last_seq + 1,
                f"the log ends at record {last_seq}, before signed checkpoint {seq}: "
                "records were cut off",
            )
        if isinstance(checkpoint, Checkpoint):
            if self._hash_at(seq) != checkpoint.hash:
                rewritten = f"record {seq} differs from signed checkpoint {seq}"
                return seq, f"{rewritten}: the log was rewritten"
            return None
        if self._tree.root(seq) != checkpoint.root:
            return (
                intact + 1,
                f"records {intact + 1} to {seq} differ from signed checkpoint {seq} (its Merkle "
                "root): the log was rewritten, or records removed, inserted or reordered",
            )
        return None


def verify_export(
    lines: Iterable[str],
    public_key: Ed25519PublicKey,
    trusted: Iterable[AnyCheckpoint] = (),
    *,
    allow_unanchored: bool = False,
) -> VerificationResult:
    """Verify a JSON Lines export (see export.py) against a public key and the checkpoints kept
    outside it (`trusted`). A malformed line is reported as a failure at that point, not
    raised; so is a header naming another key or log."""
    verifier = Verifier(public_key, allow_unanchored=allow_unanchored)
    for checkpoint in trusted:
        verifier.trust(checkpoint)
    header = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            kind = document.get("type") if isinstance(document, dict) else None
            if kind == "header":
                if header:
                    raise ValueError("a header line that is not the first line")
                header = True
                _check_header(verifier, document, public_key)
                continue
            if not header:
                header = True
                verifier.reject("the export does not begin with its header line")
            if kind == "record":
                verifier.add_record(AuditRecord.from_dict(document["record"]))
            elif kind == "checkpoint":
                verifier.add_checkpoint(parse_checkpoint(document))
            else:
                raise ValueError(f"unknown line type {kind!r}")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            verifier.fail_next(f"line {number} is not a valid export line: {exc}")
            return verifier.result()
    return verifier.result()


def _check_header(verifier: Verifier, header: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """The header must be of a format this verifier reads, and name the key it was given."""
    if header.get("format") not in FORMATS:
        verifier.reject(f"the export's format {_shown(header.get('format'))} is unknown")
    expected = key_id(public_key)
    if header.get("key_id") != expected:
        verifier.reject(
            f"the export names signing key {_shown(header.get('key_id'))}, "
            f"but the public key given is {expected}"
        )
    origin = header.get("origin")
    if origin is not None and origin != log_origin(public_key):
        verifier.reject(f"the export is of another log ({_shown(origin)})")


def _shown(value: Any) -> str:
    """A value from the export, quoted and cut short: it may be anything."""
    return repr(value)[:80]


def summary(result: VerificationResult) -> str:
    """One line for a person: the verdict, and how far the trail is anchored."""
    if not result.ok:
        if result.first_bad_seq is None:
            return f"NOT VERIFIED: {result.problem}"
        return f"TAMPERED at record {result.first_bad_seq}: {result.problem}"
    intact = f"intact: {result.records} records, {result.checkpoints} checkpoints verified"
    if not result.anchored:
        return f"{intact}; NOT ANCHORED: no checkpoint kept outside the trail covers any record"
    return (
        f"{intact}; anchored through record {result.anchored_through} by "
        f"{result.trusted_checkpoints} trusted checkpoint(s), "
        f"{result.unanchored_tail} record(s) after it unanchored"
    )
