"""The tamper-evident audit trail, as a library that imports nothing from memory_store.

Only the skeleton exists so far: the hash chain, signed checkpoints and the offline verifier
arrive with the audit issue.
"""

__version__ = "0.1.0"
