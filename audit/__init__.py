"""The tamper-evident audit trail, as a small library that imports nothing from memory_store,
so a reviewer can run it alone (`python -m audit verify EXPORT --public-key KEY`).

- records.py   the record schema and its canonical encoding
- chain.py     the domain-separated SHA-256 hash chain
- merkle.py    the RFC 6962 Merkle tree over the records, its proofs
- note.py      checkpoints as C2SP tlog-checkpoint signed notes
- signing.py   Ed25519 keys (and the legacy v1 checkpoints)
- anchors.py   reading checkpoints kept outside the trail (a file or a witness directory)
- verify.py    the verifier: chain, signatures, that the log extends every checkpoint, and
               how far checkpoints from outside anchor it
- export.py    the JSON Lines export format
"""

from audit.anchors import load_anchors, parse_anchor
from audit.chain import GENESIS, chain_hash, seal
from audit.merkle import Frontier, MerkleLog, leaf_hash, verify_consistency, verify_inclusion
from audit.note import TreeCheckpoint, log_origin
from audit.records import AuditRecord, canonical
from audit.signing import Checkpoint, SigningKey, load_public_key
from audit.verify import AnyCheckpoint, VerificationResult, Verifier, verify_export

__all__ = [
    "GENESIS",
    "AnyCheckpoint",
    "AuditRecord",
    "Checkpoint",
    "Frontier",
    "MerkleLog",
    "SigningKey",
    "TreeCheckpoint",
    "VerificationResult",
    "Verifier",
    "canonical",
    "chain_hash",
    "leaf_hash",
    "load_anchors",
    "load_public_key",
    "log_origin",
    "parse_anchor",
    "seal",
    "verify_consistency",
    "verify_export",
    "verify_inclusion",
]

__version__ = "0.1.0"
