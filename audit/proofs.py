"""Checking that one record is in a signed tree, from an inclusion proof (GET
/v1/audit/proof): the record hashes to its chain hash, that hash as a leaf hashes up the
audit path to the root of a checkpoint the log's key signed. Whoever holds the proof and the
public key can check it without the trail."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.chain import chain_hash
from audit.merkle import leaf_hash, verify_inclusion
from audit.note import TreeCheckpoint
from audit.records import AuditRecord


def check_inclusion_proof(document: dict[str, Any], public_key: Ed25519PublicKey) -> TreeCheckpoint:
    """The checkpoint the proof's record is included in; raises ValueError saying why not."""
    try:
        record = AuditRecord.from_dict(document["record"])
        checkpoint = TreeCheckpoint.parse(document["checkpoint"])
        index, size = document["leaf_index"], document["tree_size"]
        path = [base64.b64decode(node, validate=True) for node in document["path"]]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"not an inclusion proof: {exc!r}") from None
    if not isinstance(index, int) or not isinstance(size, int):
        raise ValueError("not an inclusion proof: leaf_index and tree_size are integers")
    if not checkpoint.verify(public_key):
        raise ValueError("the checkpoint is not signed by this log's key")
    if size != checkpoint.size or index != record.seq - 1:
        raise ValueError("the proof is not of this record in this checkpoint's tree")
    if chain_hash(record) != record.hash:
        raise ValueError(f"record {record.seq} was altered: its hash does not match")
    leaf = leaf_hash(bytes.fromhex(record.hash))
    if not verify_inclusion(leaf, index, size, path, checkpoint.root):
        raise ValueError(f"record {record.seq} is not in the signed tree of {size} records")
    return checkpoint
