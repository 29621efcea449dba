"""The verifier: walks the records in order and checks the chain, every checkpoint's signature,
and that the log extends every checkpoint it is given. It names the first bad record."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.chain import GENESIS, chain_hash
from audit.records import OUTCOMES, AuditRecord
from audit.signing import Checkpoint


@dataclass
class VerificationResult:
    ok: bool
    records: int
    checkpoints: int
    last_seq: int
    last_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


class Verifier:
    """Feed records in sequence order, then checkpoints; `result()` says whether all hold."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._public_key = public_key
        self._expected_seq = 1
        self._prev = GENESIS
        # The hash of each accepted record n, raw, at [32(n-1), 32n): checkpoints may come
        # after the records they name, so every hash is kept, at 32 bytes (not a dict entry).
        self._digests = bytearray()
        self._records = 0
        self._checkpoints: list[Checkpoint] = []
        self._bad: tuple[int, str] | None = None

    def _fail(self, seq: int, problem: str) -> None:
        if self._bad is None:
            self._bad = (seq, problem)

    def add_record(self, record: AuditRecord) -> None:
        if self._bad is not None:
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
        self._digests += bytes.fromhex(record.hash)  # hex: it equals a hexdigest
        self._prev = record.hash
        self._expected_seq += 1

    def _hash_at(self, seq: int) -> str | None:
        """The hash of accepted record `seq`, or None if there is none."""
        if seq < 1 or seq * 32 > len(self._digests):
            return None
        return self._digests[(seq - 1) * 32 : seq * 32].hex()

    def fail_next(self, problem: str) -> None:
        """The export is unreadable at the next record's place."""
        self._fail(self._expected_seq, problem)

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._checkpoints.append(checkpoint)

    def result(self) -> VerificationResult:
        last_seq = self._expected_seq - 1
        for checkpoint in sorted(self._checkpoints, key=lambda c: c.seq):
            if not checkpoint.verify(self._public_key):
                self._fail(checkpoint.seq, f"checkpoint at {checkpoint.seq} has a bad signature")
                break
            if self._bad is not None and checkpoint.seq >= self._bad[0]:
                break  # the chain already failed before this checkpoint
            if checkpoint.seq > last_seq:
                self._fail(
                    last_seq + 1,
                    f"the log ends at record {last_seq}, before signed checkpoint "
                    f"{checkpoint.seq}: records were cut off",
                )
                break
            if self._hash_at(checkpoint.seq) != checkpoint.hash:
                self._fail(
                    checkpoint.seq,
                    f"record {checkpoint.seq} differs from signed checkpoint {checkpoint.seq}: "
                    "the log was rewritten",
                )
                break
        bad_seq, problem = self._bad if self._bad is not None else (None, None)
        return VerificationResult(
            ok=self._bad is None,
            records=self._records,
            checkpoints=len(self._checkpoints),
            last_seq=last_seq,
            last_hash=self._prev,
            first_bad_seq=bad_seq,
            problem=problem,
        )


def verify_export(
    lines: Iterable[str],
    public_key: Ed25519PublicKey,
    extra_checkpoints: Iterable[Checkpoint] = (),
) -> VerificationResult:
    """Verify a JSON Lines export (see export.py) against a public key, plus checkpoints kept
    elsewhere. A malformed line is reported as a failure at that point, not raised."""
    verifier = Verifier(public_key)
    for checkpoint in extra_checkpoints:
        verifier.add_checkpoint(checkpoint)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            kind = document.get("type") if isinstance(document, dict) else None
            if kind == "record":
                verifier.add_record(AuditRecord.from_dict(document["record"]))
            elif kind == "checkpoint":
                verifier.add_checkpoint(Checkpoint.from_dict(document["checkpoint"]))
            elif kind != "header":
                raise ValueError(f"unknown line type {kind!r}")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            verifier.fail_next(f"line {number} is not a valid export line: {exc}")
            return verifier.result()
    return verifier.result()
