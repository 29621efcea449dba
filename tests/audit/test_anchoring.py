"""The verifier against tlog-checkpoints (audit/verify.py): only trusted checkpoints anchor a
trail; any checkpoint it contradicts fails it; the anchored range and the unanchored tail."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.records import AuditRecord
from tests.audit.helpers import RECORDS, chain, new_key, sign_tree, simple_record, verify

KEY = new_key()
FAST = settings(max_examples=40, deadline=None)
CHAINS = st.lists(RECORDS, min_size=1, max_size=12)
TRAIL = chain([simple_record(n) for n in range(1, 13)])


@FAST
@given(records=CHAINS, data=st.data())
def test_a_trail_extending_every_trusted_checkpoint_is_anchored_through_the_largest(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    sealed = chain(records)
    sizes = data.draw(st.lists(st.integers(1, len(sealed)), min_size=1, max_size=4), label="sizes")
    result = verify(
        sealed, KEY, [sign_tree(sealed, KEY, size) for size in sizes], allow_unanchored=False
    )
    assert result.ok, result.problem
    assert result.anchored_through == max(sizes)
    assert result.unanchored_tail == len(sealed) - max(sizes)
    assert result.trusted_checkpoints == len(set(sizes))  # one size, one tree: counted once


@FAST
@given(records=st.lists(RECORDS, min_size=2, max_size=12), data=st.data())
def test_rewriting_and_rechaining_fails_every_later_trusted_checkpoint(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    """An attacker who edits record j and re-seals every record after it gets a chain that
    holds, but its tree differs from any tree signed at or after j."""
    original = chain(records)
    index = data.draw(st.integers(0, len(original) - 1), label="edited index")
    size = data.draw(st.integers(index + 1, len(original)), label="checkpoint size")
    checkpoint = sign_tree(original, KEY, size)
    edited = list(records)
    edited[index] = replace(records[index], action=records[index].action + "!")
    rewritten = chain(edited)

    assert verify(rewritten, KEY).ok  # the chain alone cannot tell
    result = verify(rewritten, KEY, [checkpoint])
    assert not result.ok
    assert result.first_bad_seq == 1  # no smaller checkpoint shows records before it intact
    assert f"differ from signed checkpoint {size}" in (result.problem or "")


@FAST
@given(records=CHAINS, data=st.data())
def test_a_trail_shorter_than_a_trusted_checkpoint_is_cut_off(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    sealed = chain(records)
    size = data.draw(st.integers(1, len(sealed)), label="checkpoint size")
    keep = data.draw(st.integers(0, size - 1), label="records kept")
    result = verify(sealed[:keep], KEY, [sign_tree(sealed, KEY, size)])
    assert not result.ok
    assert result.first_bad_seq == keep + 1
    assert "cut off" in (result.problem or "")


def test_the_first_bad_record_is_placed_after_the_last_checkpoint_that_holds() -> None:
    rewritten = chain([*TRAIL[:6], replace(TRAIL[6], outcome="denied"), *TRAIL[7:]])
    checkpoints = [sign_tree(TRAIL, KEY, size) for size in (4, 9, 12)]
    result = verify(rewritten, KEY, checkpoints)
    assert not result.ok
    assert result.first_bad_seq == 5  # 1-4 proven, the rewrite is in 5-9
    assert result.anchored_through == 4


def test_nothing_anchored_fails_unless_allowed_and_stored_checkpoints_do_not_anchor() -> None:
    stored = [sign_tree(TRAIL, KEY, 12)]
    result = verify(TRAIL, KEY, stored=stored, allow_unanchored=False)
    assert not result.ok and result.first_bad_seq is None
    assert "nothing is anchored" in (result.problem or "")
    assert (result.checkpoints, result.trusted_checkpoints, result.anchored_through) == (1, 0, 0)
    allowed = verify(TRAIL, KEY, stored=stored, allow_unanchored=True)
    assert allowed.ok and not allowed.anchored and allowed.unanchored_tail == 12


def test_a_stored_checkpoint_the_trail_contradicts_fails_it_though_it_anchors_nothing() -> None:
    rewritten = chain([replace(TRAIL[0], actor_id="x"), *TRAIL[1:]])
    result = verify(rewritten, KEY, stored=[sign_tree(TRAIL, KEY, 6)])
    assert not result.ok
    assert result.first_bad_seq == 1


def test_two_trusted_checkpoints_of_one_size_that_differ_fail_the_trail() -> None:
    """The log signed two different trees of one size: at most one is this trail's."""
    other = chain([replace(TRAIL[0], actor_id="x"), *TRAIL[1:]])
    result = verify(TRAIL, KEY, [sign_tree(TRAIL, KEY, 6), sign_tree(other, KEY, 6)])
    assert not result.ok


def test_a_chain_break_and_a_contradicted_checkpoint_report_the_earliest_place() -> None:
    broken = list(TRAIL)
    broken[9] = replace(broken[9], purpose="analytics")  # the chain breaks at 10
    broken = chain([*TRAIL[:2], replace(TRAIL[2], action="x"), *TRAIL[3:9]]) + broken[9:]
    result = verify(broken, KEY, [sign_tree(TRAIL, KEY, 6)])
    assert not result.ok
    assert result.first_bad_seq == 1  # the checkpoint at 6 puts the doubt before the break
