"""Properties of the record encoding, the hash chain and the verifier (audit/ only)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import random
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.chain import GENESIS, RECORD_DOMAIN, chain_hash, seal
from audit.records import OUTCOMES, AuditRecord, canonical
from audit.signing import Checkpoint
from tests.audit.helpers import (
    AT,
    MEMORY_IDS,
    OPTIONAL_TEXT,
    RECORDS,
    RESULT_COUNT,
    TEXT,
    chain,
    new_key,
    simple_record,
    verify,
)

KEY = new_key()
OTHER_KEY = new_key()

FAST = settings(max_examples=40, deadline=None)
CHAINS = st.lists(RECORDS, min_size=1, max_size=7)
LONG_CHAINS = st.lists(RECORDS, min_size=2, max_size=7)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(TEXT, JSON_VALUES, max_size=6)

# A strategy for a replacement value of every field the hash covers, except `seq` (see below).
_TEXT_FIELDS = ("at", "actor_id", "actor_role", "request_id", "action", "prev", "hash")
_OPTIONAL_TEXT_FIELDS = ("subject", "target", "purpose", "reason")
REPLACEMENTS: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(_TEXT_FIELDS, TEXT),
    **dict.fromkeys(_OPTIONAL_TEXT_FIELDS, OPTIONAL_TEXT),
    "outcome": st.sampled_from(sorted(OUTCOMES)) | TEXT,
    "memory_ids": MEMORY_IDS,
    "result_count": RESULT_COUNT,
}
CONTENT_FIELDS = sorted(set(REPLACEMENTS) - {"prev", "hash"})
# What an attacker who re-chains can write and still pass the chain: a known outcome.
VALID_REPLACEMENTS = {**REPLACEMENTS, "outcome": st.sampled_from(sorted(OUTCOMES))}


def test_every_record_field_except_seq_has_a_mutation_strategy() -> None:
    """The tamper property below covers every field of AuditRecord (a new field must be added)."""
    assert {f.name for f in fields(AuditRecord)} - {"seq"} == set(REPLACEMENTS)


def _reordered(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every dict's keys inserted in a shuffled order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: _reordered(item, rng) for key, item in items}
    if isinstance(value, list):
        return [_reordered(item, rng) for item in value]
    return value


def _mutate(
    data: st.DataObject,
    record: AuditRecord,
    names: list[str],
    replacements: dict[str, st.SearchStrategy[Any]] = REPLACEMENTS,
) -> AuditRecord:
    name = data.draw(st.sampled_from(names), label="field")
    old = getattr(record, name)
    new = data.draw(replacements[name].filter(lambda value: value != old), label="new value")
    return replace(record, **{name: new})


# --- canonical encoding -----------------------------------------------------------------------


@FAST
@given(document=DOCUMENTS, seed=st.integers())
def test_canonical_is_deterministic_and_independent_of_key_order(
    document: dict[str, Any], seed: int
) -> None:
    shuffled = _reordered(document, random.Random(seed))
    assert canonical(document) == canonical(document)
    assert canonical(shuffled) == canonical(document)


@FAST
@given(document=DOCUMENTS)
def test_canonical_is_ascii_compact_and_decodes_to_the_same_document(
    document: dict[str, Any],
) -> None:
    encoded = canonical(document)
    assert all(byte < 0x80 for byte in encoded)
    assert b"\n" not in encoded
    assert json.loads(encoded) == document


def test_canonical_refuses_nan_and_infinity() -> None:
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError):
            canonical({"x": bad})


@FAST
@given(record=RECORDS, seq=st.integers(1, 10**6), prev=TEXT)
def test_record_round_trips_through_to_dict_json_and_from_dict(
    record: AuditRecord, seq: int, prev: str
) -> None:
    """A sealed record, exported as JSON (any JSON writer) and parsed back, is the same record
    with the same canonical bytes and hash."""
    sealed = seal(record, seq=seq, prev=prev)
    for text in (
        json.dumps(sealed.to_dict()),
        json.dumps(sealed.to_dict(), ensure_ascii=False, indent=1),
        canonical(sealed.to_dict()).decode("ascii"),
    ):
        back = AuditRecord.from_dict(json.loads(text))
        assert back == sealed
        assert canonical(back.to_dict()) == canonical(sealed.to_dict())
        assert chain_hash(back) == sealed.hash


def test_hash_is_domain_separated_sha256_of_the_body_without_hash() -> None:
    sealed = seal(simple_record(1), seq=1, prev=GENESIS)
    body = sealed.to_dict()
    del body["hash"]
    expected = hashlib.sha256(b"memory-store/audit/record/v1\x00" + canonical(body)).hexdigest()
    assert sealed.hash == expected
    assert hashlib.sha256(canonical(body)).hexdigest() != expected


# Records with every field drawn, the chain's own ones (seq, prev, hash) included.
ANY_RECORDS = st.builds(
    replace,
    RECORDS,
    seq=st.integers(min_value=-(2**70), max_value=2**70),
    prev=TEXT,
    hash=TEXT,
)


def _asdict_body(record: AuditRecord) -> dict[str, Any]:
    """body() as first written, with dataclasses.asdict: the reference for the encoding."""
    document = dataclasses.asdict(record)
    document["memory_ids"] = list(record.memory_ids)
    del document["hash"]
    return document


def _dumps_canonical(document: dict[str, Any]) -> bytes:
    """canonical() as first written, one json.dumps per call."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


@settings(max_examples=300, deadline=None)
@given(record=ANY_RECORDS)
def test_body_built_field_by_field_is_what_asdict_built_byte_for_byte(
    record: AuditRecord,
) -> None:
    """The same keys in the same order, the same values of the same types, the same canonical
    bytes and hash: no stored hash changes."""
    body, reference = record.body(), _asdict_body(record)
    assert body == reference
    assert list(body) == list(reference)
    assert [type(value) for value in body.values()] == [type(v) for v in reference.values()]
    assert canonical(body) == _dumps_canonical(reference)
    assert chain_hash(record) == (
        hashlib.sha256(RECORD_DOMAIN + _dumps_canonical(reference)).hexdigest()
    )
    assert record.to_dict() == {**reference, "hash": record.hash}


@settings(max_examples=300, deadline=None)
@given(record=ANY_RECORDS, seq=st.integers(1, 10**12), prev=TEXT)
def test_seal_builds_the_body_once_and_gives_the_record_two_replaces_gave(
    record: AuditRecord, seq: int, prev: str
) -> None:
    placed = replace(record, seq=seq, prev=prev, hash="")
    expected = replace(
        placed,
        hash=hashlib.sha256(RECORD_DOMAIN + _dumps_canonical(_asdict_body(placed))).hexdigest(),
    )
    assert seal(record, seq=seq, prev=prev) == expected


@FAST
@given(document=DOCUMENTS)
def test_canonical_is_what_json_dumps_with_the_same_options_gives(
    document: dict[str, Any],
) -> None:
    assert canonical(document) == _dumps_canonical(document)


def test_body_is_a_fresh_dict_the_caller_may_change() -> None:
    record = simple_record(1)
    body = record.body()
    body["memory_ids"].append("m-x")
    body["action"] = "changed"
    assert record.body() == _asdict_body(record)


def test_known_records_keep_their_hashes() -> None:
    """Hashes computed by the first release (dataclasses.asdict, json.dumps): any change to
    the encoding would orphan every stored trail."""
    record = AuditRecord(
        at="2026-11-26T10:00:00.000000Z",
        actor_id="tok_0123456789abcdef",
        actor_role="assistant",
        request_id="req_\u00e9\u2028x",
        action="memory.read",
        outcome="allowed",
        subject="ps_42",
        memory_ids=("mem_1", 'mem_"2"'),
        purpose="personalization",
        result_count=2,
    )
    first = seal(record, seq=1, prev=GENESIS)
    second = seal(record, seq=2, prev=first.hash)
    assert first.hash == "6047bd6518111dfcaaaccde3d4753ac8139bb0990c41a88f086686c40d83c4d1"
    assert second.hash == "0c78eee7f302cf0f25071d3ef2f9a0c4a2edc166ba0e0ba03f107206908fc73c"


# --- the chain --------------------------------------------------------------------------------


@FAST
@given(records=CHAINS)
def test_a_sealed_chain_of_random_records_verifies(records: list[AuditRecord]) -> None:
    sealed = chain(records)
    result = verify(sealed, KEY)
    assert result.ok, result.problem
    assert result.first_bad_seq is None
    assert result.records == result.last_seq == len(records)
    assert result.last_hash == sealed[-1].hash
    assert [r.seq for r in sealed] == list(range(1, len(records) + 1))
    assert sealed[0].prev == GENESIS
    assert all(b.prev == a.hash for a, b in itertools.pairwise(sealed))


@settings(max_examples=120, deadline=None)
@given(records=CHAINS, data=st.data())
def test_changing_any_single_field_of_one_record_fails_at_that_records_seq(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    """Every field but seq (see below): content, memory_ids, target, outcome, at, prev, hash."""
    sealed = chain(records)
    index = data.draw(st.integers(0, len(sealed) - 1), label="index")
    sealed[index] = _mutate(data, sealed[index], sorted(REPLACEMENTS))
    result = verify(sealed, KEY)
    assert not result.ok
    assert result.first_bad_seq == index + 1
    assert str(index + 1) in (result.problem or "")


@FAST
@given(records=CHAINS, data=st.data())
def test_raising_a_records_seq_fails_at_that_records_place(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    sealed = chain(records)
    index = data.draw(st.integers(0, len(sealed) - 1), label="index")
    bump = data.draw(st.integers(1, 1000), label="bump")
    sealed[index] = replace(sealed[index], seq=sealed[index].seq + bump)
    result = verify(sealed, KEY)
    assert not result.ok
    assert result.first_bad_seq == index + 1


def test_lowering_a_records_seq_fails_at_that_records_place() -> None:
    sealed = chain([simple_record(n) for n in range(1, 8)])
    sealed[4] = replace(sealed[4], seq=2)  # record 5 now claims to be record 2
    result = verify(sealed, KEY)
    assert not result.ok
    assert result.first_bad_seq == 5


@FAST
@given(records=LONG_CHAINS, data=st.data())
def test_deleting_a_record_fails_at_the_missing_seq(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    """Any record but the last (the tail needs a checkpoint, tested below)."""
    sealed = chain(records)
    index = data.draw(st.integers(0, len(sealed) - 2), label="index")
    del sealed[index]
    result = verify(sealed, KEY)
    assert not result.ok
    assert result.first_bad_seq == index + 1
    assert "missing" in (result.problem or "")


@FAST
@given(records=LONG_CHAINS, data=st.data())
def test_swapping_two_adjacent_records_fails_at_the_first_of_them(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    sealed = chain(records)
    index = data.draw(st.integers(0, len(sealed) - 2), label="index")
    sealed[index], sealed[index + 1] = sealed[index + 1], sealed[index]
    result = verify(sealed, KEY)
    assert not result.ok
    assert result.first_bad_seq == index + 1


@FAST
@given(records=CHAINS, forged=RECORDS, data=st.data())
def test_inserting_a_forged_record_fails_where_it_was_inserted(
    records: list[AuditRecord], forged: AuditRecord, data: st.DataObject
) -> None:
    """A forged record taking the seq of the record it precedes, with a made-up prev/hash."""
    sealed = chain(records)
    index = data.draw(st.integers(0, len(sealed) - 1), label="index")
    fake = replace(forged, seq=index + 1, prev=data.draw(TEXT), hash=data.draw(TEXT))
    sealed.insert(index, fake)
    result = verify(sealed, KEY)
    assert not result.ok
    assert result.first_bad_seq == index + 1


@FAST
@given(records=CHAINS, forged=RECORDS, data=st.data())
def test_inserting_a_correctly_sealed_forged_record_fails_at_the_fork(
    records: list[AuditRecord], forged: AuditRecord, data: st.DataObject
) -> None:
    """The forgery is sealed on top of its predecessor, so it links and hashes correctly; the
    genuine record after it then repeats its seq, and the verifier names that seq."""
    sealed = chain(records)
    index = data.draw(st.integers(0, len(sealed) - 1), label="index")
    prev = sealed[index - 1].hash if index else GENESIS
    sealed.insert(index, seal(forged, seq=index + 1, prev=prev))
    result = verify(sealed, KEY)
    assert not result.ok
    assert result.first_bad_seq == index + 1


# --- checkpoints ------------------------------------------------------------------------------


def _checkpoint(record: AuditRecord, key: Any = KEY) -> Checkpoint:
    return key.sign(seq=record.seq, hash=record.hash, at=AT)


@FAST
@given(records=CHAINS)
def test_a_chain_with_a_checkpoint_at_every_record_verifies(records: list[AuditRecord]) -> None:
    sealed = chain(records)
    checkpoints = [_checkpoint(record) for record in sealed]
    result = verify(sealed, KEY, checkpoints)
    assert result.ok, result.problem
    assert result.checkpoints == len(sealed)


@FAST
@given(records=LONG_CHAINS, data=st.data())
def test_rechaining_after_an_edit_passes_the_chain_but_fails_an_earlier_checkpoint(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    """An attacker who edits record j and recomputes every hash after it gets a self-consistent
    chain, but it no longer extends a checkpoint signed at or after j before the edit."""
    original = chain(records)
    index = data.draw(st.integers(0, len(original) - 1), label="edited index")
    checkpoint_seq = data.draw(st.integers(index + 1, len(original)), label="checkpoint seq")
    checkpoint = _checkpoint(original[checkpoint_seq - 1])

    edited = list(records)
    edited[index] = _mutate(data, records[index], CONTENT_FIELDS, VALID_REPLACEMENTS)
    rewritten = chain(edited)

    assert verify(rewritten, KEY).ok  # the chain alone cannot tell
    result = verify(rewritten, KEY, [checkpoint])
    assert not result.ok
    assert result.first_bad_seq == checkpoint_seq
    assert "rewritten" in (result.problem or "")


@FAST
@given(records=CHAINS, data=st.data())
def test_truncating_below_a_checkpoint_is_cut_off_at_last_seq_plus_one(
    records: list[AuditRecord], data: st.DataObject
) -> None:
    sealed = chain(records)
    checkpoint_seq = data.draw(st.integers(1, len(sealed)), label="checkpoint seq")
    keep = data.draw(st.integers(0, checkpoint_seq - 1), label="records kept")
    checkpoint = _checkpoint(sealed[checkpoint_seq - 1])

    assert verify(sealed[:keep], KEY).ok  # without the checkpoint the cut is invisible
    result = verify(sealed[:keep], KEY, [checkpoint])
    assert not result.ok
    assert result.last_seq == keep
    assert result.first_bad_seq == keep + 1
    assert "cut off" in (result.problem or "")


def _flip_signature(checkpoint: Checkpoint) -> Checkpoint:
    raw = bytearray(base64.b64decode(checkpoint.signature))
    raw[0] ^= 0x01
    return replace(checkpoint, signature=base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_flip_signature, id="flipped-signature-bit"),
        pytest.param(lambda c: replace(c, signature="not base64!"), id="garbage-signature"),
        pytest.param(lambda c: replace(c, signature=""), id="empty-signature"),
        pytest.param(lambda c: replace(c, hash="0" * 64), id="hash-changed-after-signing"),
        pytest.param(lambda c: replace(c, at="2030-01-01T00:00:00Z"), id="at-changed"),
        pytest.param(lambda c: OTHER_KEY.sign(seq=c.seq, hash=c.hash, at=c.at), id="other-key"),
        pytest.param(
            lambda c: replace(OTHER_KEY.sign(seq=c.seq, hash=c.hash, at=c.at), key_id=c.key_id),
            id="other-key-claiming-our-key-id",
        ),
    ],
)
def test_a_checkpoint_with_a_bad_signature_or_another_key_fails_at_its_seq(forge: Any) -> None:
    sealed = chain([simple_record(n) for n in range(1, 6)])
    good = _checkpoint(sealed[2])
    assert good.verify(KEY.public_key)
    assert verify(sealed, KEY, [good]).ok

    bad = forge(good)
    assert not bad.verify(KEY.public_key)
    result = verify(sealed, KEY, [bad])
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "bad signature" in (result.problem or "")


def test_checkpoint_round_trips_through_to_dict_and_from_dict() -> None:
    sealed = seal(simple_record(1), seq=1, prev=GENESIS)
    checkpoint = _checkpoint(sealed)
    back = Checkpoint.from_dict(json.loads(json.dumps(checkpoint.to_dict())))
    assert back == checkpoint
    assert back.verify(KEY.public_key)
    assert back.key_id == KEY.key_id


# --- from_dict validation ---------------------------------------------------------------------

_REQUIRED = ("at", "actor_id", "actor_role", "request_id", "action", "outcome", "seq", "prev")


def _valid_document() -> dict[str, Any]:
    return seal(simple_record(3), seq=1, prev=GENESIS).to_dict()


def test_from_dict_accepts_the_valid_document_used_below() -> None:
    assert AuditRecord.from_dict(_valid_document()).seq == 1


@pytest.mark.parametrize("name", [*_REQUIRED, "hash"])
def test_from_dict_rejects_a_record_missing_a_required_field(name: str) -> None:
    document = _valid_document()
    del document[name]
    with pytest.raises(ValueError, match="malformed audit record"):
        AuditRecord.from_dict(document)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("at", 1_700_000_000),
        ("actor_id", None),
        ("actor_role", ["service"]),
        ("request_id", {"id": 1}),
        ("action", 3.5),
        ("outcome", True),
        ("prev", 0),
        ("hash", None),
        ("subject", 42),
        ("target", ["k1"]),
        ("purpose", False),
        ("reason", {"why": "x"}),
        ("seq", "1"),
        ("seq", 1.0),
        ("seq", None),
        ("seq", True),
        ("seq", False),
        ("result_count", True),
        ("result_count", "3"),
        ("result_count", 3.0),
        ("memory_ids", None),
        ("memory_ids", 7),
        ("memory_ids", ["m1", 2]),
        ("memory_ids", ["m1", None]),
        ("memory_ids", [["m1"]]),
    ],
)
def test_from_dict_rejects_a_field_of_the_wrong_type_including_bool_as_int(
    name: str, value: Any
) -> None:
    document = _valid_document()
    document[name] = value
    with pytest.raises(ValueError, match="malformed audit record"):
        AuditRecord.from_dict(document)


@pytest.mark.parametrize("value", ["m1", {"m1": 1}, ("m1",)])
def test_from_dict_rejects_memory_ids_that_is_not_a_list(value: Any) -> None:
    """A string must not be taken as its characters, nor a dict as its keys."""
    document = _valid_document()
    document["memory_ids"] = value
    with pytest.raises(ValueError, match="malformed audit record"):
        AuditRecord.from_dict(document)


@pytest.mark.parametrize("document", [None, [], "record", 3, ["at", "seq"]])
def test_from_dict_rejects_a_document_that_is_not_an_object(document: Any) -> None:
    with pytest.raises(ValueError, match="malformed audit record"):
        AuditRecord.from_dict(document)


def test_from_dict_rejects_a_record_carrying_a_field_the_schema_does_not_have() -> None:
    """An exported record with an extra field (say, a memory's content) is refused, so an
    export cannot smuggle data past a verifier that only checks the chain."""
    document = seal(simple_record(1), seq=1, prev=GENESIS).to_dict()
    document["content"] = "prefers window seats"
    with pytest.raises(ValueError, match="unknown fields"):
        AuditRecord.from_dict(document)
