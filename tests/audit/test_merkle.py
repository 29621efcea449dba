"""The RFC 6962 Merkle tree (audit/merkle.py) against a naive recursive reference, and its
inclusion and consistency proofs: they verify for every size, and fail when altered."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MerkleLog,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

FAST = settings(max_examples=60, deadline=None)
SIZES = st.integers(min_value=0, max_value=300)
KEEP_FROM = st.integers(min_value=1, max_value=6)


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


def reference_root(data: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, word for word: MTH({}) = SHA-256(); MTH({d}) = SHA-256(0x00 || d);
    else split at k, the largest power of two smaller than n."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(data[:k]) + reference_root(data[k:])).digest()


def build(n: int, keep_from: int = 5) -> MerkleLog:
    tree = MerkleLog(keep_from=keep_from)
    for data in leaves(n):
        tree.append(data)
    return tree


def flip(node: bytes) -> bytes:
    return bytes([node[0] ^ 1]) + node[1:]


def test_the_known_answers_of_small_trees() -> None:
    """Fixed values, so that a change to the leaf or node encoding cannot pass unnoticed."""
    a, b, c = leaves(3)
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert build(1).root() == hashlib.sha256(b"\x00" + a).digest()
    assert build(2).root() == node_hash(leaf_hash(a), leaf_hash(b))
    assert build(3).root() == node_hash(node_hash(leaf_hash(a), leaf_hash(b)), leaf_hash(c))


@FAST
@given(n=SIZES, keep_from=KEEP_FROM)
def test_the_root_of_n_leaves_is_the_reference_root_whatever_is_kept(
    n: int, keep_from: int
) -> None:
    data = leaves(n)
    tree = build(n, keep_from)
    frontier = Frontier()
    for item in data:
        frontier.append(item)
    assert tree.root() == frontier.root() == reference_root(data)
    assert tree.size == frontier.size == n
    assert len(frontier.hashes) == n.bit_count()  # O(log n): one per set bit


@FAST
@given(n=st.integers(1, 200), keep_from=KEEP_FROM, data=st.data())
def test_the_root_at_any_earlier_size_is_that_trees_reference_root(
    n: int, keep_from: int, data: st.DataObject
) -> None:
    tree = build(n, keep_from)
    m = data.draw(st.integers(0, n), label="earlier size")
    assert tree.root(m) == reference_root(leaves(m))


@FAST
@given(n=SIZES)
def test_a_frontier_round_trips_through_its_encoding(n: int) -> None:
    frontier = build(n).frontier()
    assert Frontier.decode(n, frontier.encode()) == frontier
    with pytest.raises(ValueError):  # 2n + 1 has one more set bit: one more subtree
        Frontier.decode(2 * n + 1, frontier.encode())


def test_a_frontier_refuses_hashes_that_do_not_fit_its_size() -> None:
    with pytest.raises(ValueError):
        Frontier(3, [b"\x00" * 32])
    with pytest.raises(ValueError):
        Frontier(1, [b"\x00" * 31])
    with pytest.raises(ValueError):
        Frontier.decode(1, "zz" * 32)


@FAST
@given(n=st.integers(1, 200), keep_from=KEEP_FROM, data=st.data())
def test_an_inclusion_proof_verifies_and_fails_when_altered(
    n: int, keep_from: int, data: st.DataObject
) -> None:
    tree = build(n, keep_from)
    size = data.draw(st.integers(1, n), label="tree size")
    index = data.draw(st.integers(0, size - 1), label="leaf")
    leaf = leaf_hash(leaves(n)[index])
    root = reference_root(leaves(size))
    proof = tree.inclusion_proof(index, size)
    assert verify_inclusion(leaf, index, size, proof, root)

    assert not verify_inclusion(flip(leaf), index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, flip(root))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="altered node")
        altered = [*proof[:at], flip(proof[at]), *proof[at + 1 :]]
        assert not verify_inclusion(leaf, index, size, altered, root)
        assert not verify_inclusion(leaf, index, size, proof[:-1], root)
    assert not verify_inclusion(leaf, index, size, [*proof, root], root)
    if size > 1:
        other = (index + 1) % size
        assert not verify_inclusion(leaf, other, size, proof, root)
    assert not verify_inclusion(leaf, size, size, proof, root)  # no such leaf


@FAST
@given(n=st.integers(1, 200), keep_from=KEEP_FROM, data=st.data())
def test_a_consistency_proof_verifies_and_fails_when_altered(
    n: int, keep_from: int, data: st.DataObject
) -> None:
    tree = build(n, keep_from)
    new = data.draw(st.integers(1, n), label="new size")
    old = data.draw(st.integers(1, new), label="old size")
    old_root, new_root = reference_root(leaves(old)), reference_root(leaves(new))
    proof = tree.consistency_proof(old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)

    assert not verify_consistency(old, new, flip(old_root), new_root, proof)
    assert not verify_consistency(old, new, old_root, flip(new_root), proof)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="altered node")
        altered = [*proof[:at], flip(proof[at]), *proof[at + 1 :]]
        assert not verify_consistency(old, new, old_root, new_root, altered)
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not verify_consistency(old, new, old_root, new_root, [*proof, new_root])
    # A tree that does not extend the old one: the same size, other leaves.
    forked = leaves(new)
    forked[data.draw(st.integers(0, old - 1), label="forked leaf")] = b"\xff" * 32
    assert not verify_consistency(old, new, old_root, reference_root(forked), proof)


def test_consistency_of_equal_and_empty_trees() -> None:
    tree = build(5)
    assert tree.consistency_proof(5, 5) == []
    assert verify_consistency(5, 5, tree.root(), tree.root(), [])
    assert not verify_consistency(5, 5, tree.root(), flip(tree.root()), [])
    assert verify_consistency(0, 5, EMPTY_ROOT, tree.root(), [])
    assert not verify_consistency(5, 4, tree.root(), tree.root(4), [])


def test_proofs_of_leaves_or_sizes_the_tree_does_not_hold_are_refused() -> None:
    tree = build(4)
    with pytest.raises(ValueError):
        tree.inclusion_proof(4, 4)
    with pytest.raises(ValueError):
        tree.inclusion_proof(0, 5)
    with pytest.raises(ValueError):
        tree.consistency_proof(3, 5)
    with pytest.raises(ValueError):
        tree.range_hash(1, 4)  # not a subtree of the RFC's recursion
    with pytest.raises(ValueError):
        tree.append(b"short")
