"""The tamper-evident audit trail, as a small library that imports nothing from memory_store,
so a reviewer can run it alone (`python -m audit verify EXPORT --public-key KEY`).

- records.py   the record schema and its canonical encoding
- chain.py     the domain-separated SHA-256 hash chain
- signing.py   Ed25519 keys and signed checkpoints
- verify.py    the verifier: chain, signatures, and that the log extends every checkpoint
- export.py    the JSON Lines export format
"""

from audit.chain import GENESIS, chain_hash, seal
from audit.records import AuditRecord, canonical
from audit.signing import Checkpoint, SigningKey, load_public_key
from audit.verify import VerificationResult, Verifier, verify_export

__all__ = [
    "GENESIS",
    "AuditRecord",
    "Checkpoint",
    "SigningKey",
    "VerificationResult",
    "Verifier",
    "canonical",
    "chain_hash",
    "load_public_key",
    "seal",
    "verify_export",
]

__version__ = "0.1.0"
