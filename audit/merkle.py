"""The RFC 6962 Merkle tree over the trail (RFC 9162 section 2.1), which checkpoints sign.

Leaf i (from 0) is record i + 1, and its leaf data is that record's chain hash, raw (32 bytes):
the chain hash already commits to every field of the record and to the record before it, so
the leaf costs one short SHA-256 more per record, and anyone holding a record can compute it.

    leaf hash = SHA-256(0x00 || chain hash)        node hash = SHA-256(0x01 || left || right)

and a tree of n > 1 leaves splits at the largest power of two smaller than n. `Frontier` is
the tree's right edge (one subtree root per set bit of n): what the writer keeps beside the
chain's head, so that a checkpoint costs O(log n), not a pass over the trail. `MerkleLog`
keeps every leaf, for the verifier and for proofs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
_sha256 = hashlib.sha256
EMPTY_ROOT = hashlib.sha256(b"").digest()  # the root of a tree with no leaves


def leaf_hash(data: bytes | bytearray) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(roots: Sequence[bytes]) -> bytes:
    """The root over perfect subtrees given largest (leftmost) first."""
    if not roots:
        return EMPTY_ROOT
    root = roots[-1]
    for left in reversed(roots[:-1]):
        root = node_hash(left, root)
    return root


class Frontier:
    """The roots of the perfect subtrees that make up a tree of `size` leaves, largest first:
    appending a leaf merges the smallest ones as a binary counter carries."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)
        if size < 0 or len(self.hashes) != size.bit_count():
            raise ValueError("a frontier holds one hash per set bit of its size")
        if any(len(h) != HASH_SIZE for h in self.hashes):
            raise ValueError("a frontier holds 32-byte hashes")

    def append(self, data: bytes) -> None:
        node = leaf_hash(data)
        carry = self.size
        hashes = self.hashes
        while carry & 1:
            node = node_hash(hashes.pop(), node)
            carry >>= 1
        hashes.append(node)
        self.size += 1

    def root(self) -> bytes:
        return _fold(self.hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def encode(self) -> str:
        """Hex, the hashes one after the other; the size is stored beside it (the head's seq)."""
        return b"".join(self.hashes).hex()

    @classmethod
    def decode(cls, size: int, text: str) -> Frontier:
        raw = bytes.fromhex(text)
        return cls(size, (raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self.size == other.size and self.hashes == other.hashes

    __hash__ = None  # type: ignore[assignment]  # it changes: never a dict key

    def __repr__(self) -> str:
        return f"Frontier(size={self.size})"


class MerkleLog:
    """Every leaf's data, in order, and the nodes of the subtrees of height `keep_from` and
    more: the root at any size so far, or a proof, then costs at most 2**keep_from leaf hashes
    per subtree below that height, while what is kept beyond the leaves is ~1/2**(keep_from-1)
    of them (the verifier holds a million records' in ~34 MB)."""

    def __init__(self, *, keep_from: int = 5) -> None:
        if keep_from < 1:
            raise ValueError("keep_from must be at least 1")
        self._keep_from = keep_from
        self._data = bytearray()
        self._levels: list[bytearray] = []  # [h - keep_from]: the nodes of height h, in order
        self._frontier = Frontier()

    @property
    def size(self) -> int:
        return self._frontier.size

    def append(self, data: bytes) -> None:
        if len(data) != HASH_SIZE:
            raise ValueError("leaf data is a 32-byte chain hash")
        self._data += data
        # leaf_hash and node_hash inline: this runs once per record the verifier reads.
        node = _sha256(b"\x00" + data).digest()
        frontier = self._frontier
        carry, height = frontier.size, 0
        while carry & 1:
            node = _sha256(b"\x01" + frontier.hashes.pop() + node).digest()
            height += 1
            if height >= self._keep_from:
                level = height - self._keep_from
                if level == len(self._levels):
                    self._levels.append(bytearray())
                self._levels[level] += node
            carry >>= 1
        frontier.hashes.append(node)
        frontier.size += 1

    def leaf_data(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return bytes(self._data[index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def frontier(self) -> Frontier:
        return self._frontier.copy()

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first `size` leaves (default: all)."""
        if size is None or size == self.size:
            return self._frontier.root()
        return self.range_hash(0, size)

    def range_hash(self, start: int, end: int) -> bytes:
        """The root of the tree over leaves [start, end), where start is a multiple of the
        smallest power of two >= end - start (every range the RFC's recursion visits is)."""
        length = end - start
        if not 0 <= start <= end <= self.size:
            raise ValueError(f"leaves {start}..{end} are not in a tree of {self.size}")
        if length and start % (1 << (length - 1).bit_length()):
            raise ValueError(f"leaves {start}..{end} are not a subtree")
        roots, position = [], start
        for height in range(length.bit_length() - 1, -1, -1):
            if length >> height & 1:
                roots.append(self._subtree(position, height))
                position += 1 << height
        return _fold(roots)

    def _subtree(self, position: int, height: int) -> bytes:
        if height >= self._keep_from:
            index = (position >> height) * HASH_SIZE
            return bytes(self._levels[height - self._keep_from][index : index + HASH_SIZE])
        if height == 0:
            return leaf_hash(self._data[position * HASH_SIZE : (position + 1) * HASH_SIZE])
        half = 1 << (height - 1)
        return node_hash(
            self._subtree(position, height - 1), self._subtree(position + half, height - 1)
        )

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 2.1.3.1: the audit path of leaf `index` in the tree of `size` leaves."""
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of {size}")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            middle = start + _split(end - start)
            if index < middle:
                path.append(self.range_hash(middle, end))
                end = middle
            else:
                path.append(self.range_hash(start, middle))
                start = middle
        return path[::-1]

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 2.1.4.1: what proves the tree of `new_size` leaves extends the tree of
        `old_size` leaves."""
        if not 0 <= old_size <= new_size <= self.size:
            raise ValueError(f"no trees of {old_size} and {new_size} in a tree of {self.size}")
        if old_size in (0, new_size):
            return []
        path: list[bytes] = []
        start, end, whole = 0, new_size, True
        while old_size != end:  # the RFC's SUBPROOF, top down: its nodes come out reversed
            middle = start + _split(end - start)
            if old_size <= middle:
                path.append(self.range_hash(middle, end))
                end = middle
            else:
                path.append(self.range_hash(start, middle))
                start, whole = middle, False
        if not whole:
            path.append(self.range_hash(start, end))
        return path[::-1]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: is the leaf hash `leaf` at `index` of the tree with `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and node == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: does the tree (new_size, new_root) extend (old_size, old_root)?"""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(node, fr)
            sr = node_hash(node, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
