"""Checkpoints as C2SP tlog-checkpoint signed notes (audit/note.py, SigningKey.sign_tree):
the exact text, the key ID, what a verifier accepts and what it refuses."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.note import TreeCheckpoint, log_origin, note_key_id, signature_line
from audit.signing import SigningKey
from tests.audit.helpers import new_key

KEY = new_key()
OTHER = new_key()
ROOT = hashlib.sha256(b"a root").digest()


def raw(key: SigningKey) -> bytes:
    return key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_a_checkpoint_is_origin_size_root_a_blank_line_and_an_em_dash_signature_line() -> None:
    note = KEY.sign_tree(1000, ROOT).note
    origin = KEY.origin
    assert origin == log_origin(KEY.public_key) == f"memory-store.local/audit/{KEY.key_id}"
    body = f"{origin}\n1000\n{base64.b64encode(ROOT).decode()}\n"
    assert note.startswith(body + "\n\u2014 " + origin + " ")
    assert note.endswith("\n") and note.count("\n") == 5
    signed = base64.b64decode(note.rstrip("\n").rsplit(" ", 1)[1])
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + raw(KEY)).digest()[:4]
    assert signed[:4] == key_id == note_key_id(origin, KEY.public_key)
    KEY.public_key.verify(signed[4:], body.encode())  # raises if the body is not what is signed


def test_signing_the_same_tree_twice_gives_the_same_note() -> None:
    """Ed25519 is deterministic: two processes signing one head publish one file."""
    assert KEY.sign_tree(7, ROOT).note == KEY.sign_tree(7, ROOT).note


def test_a_note_parses_back_to_what_was_signed_and_verifies() -> None:
    signed = KEY.sign_tree(42, ROOT)
    parsed = TreeCheckpoint.parse(signed.note)
    assert (parsed.origin, parsed.size, parsed.seq, parsed.root) == (KEY.origin, 42, 42, ROOT)
    assert parsed.verify(KEY.public_key)
    assert not parsed.verify(OTHER.public_key)


def test_an_unknown_cosignature_is_ignored_and_ours_still_counts() -> None:
    note = KEY.sign_tree(42, ROOT).note
    witness = signature_line("witness.example/w1", b"\x01\x02\x03\x04", b"\x00" * 64)
    assert TreeCheckpoint.parse(note + witness).verify(KEY.public_key)
    assert TreeCheckpoint.parse(
        note[: note.index("\n\n") + 2] + witness + note[note.index("\n\n") + 2 :]
    ).verify(KEY.public_key)


def test_a_note_with_only_other_signatures_does_not_verify() -> None:
    note = KEY.sign_tree(42, ROOT).note
    body = note[: note.index("\n\n") + 1]
    other = OTHER.sign_tree(42, ROOT).note.split("\n\n")[1]
    assert not TreeCheckpoint.parse(body + "\n" + other).verify(KEY.public_key)


def test_a_bad_line_in_our_keys_name_and_id_fails_even_beside_a_good_one() -> None:
    note = KEY.sign_tree(42, ROOT).note
    good = note.split("\n\n")[1]
    bad = signature_line(KEY.origin, note_key_id(KEY.origin, KEY.public_key), b"\x00" * 64)
    assert not TreeCheckpoint.parse(note + bad).verify(KEY.public_key)
    assert not TreeCheckpoint.parse(note.split("\n\n")[0] + "\n\n" + bad + good).verify(
        KEY.public_key
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [("\n42\n", "\n43\n"), ("memory-store.local", "memory-store.evil")],
    ids=["size", "origin"],
)
def test_a_changed_body_no_longer_verifies(old: str, new: str) -> None:
    note = KEY.sign_tree(42, ROOT).note
    assert not TreeCheckpoint.parse(note.replace(old, new, 1)).verify(KEY.public_key)


def test_a_changed_root_no_longer_verifies() -> None:
    note = KEY.sign_tree(42, ROOT).note
    other_root = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    changed = note.replace(base64.b64encode(ROOT).decode(), other_root)
    assert not TreeCheckpoint.parse(changed).verify(KEY.public_key)


def test_another_log_of_our_key_is_not_ours() -> None:
    """The key signing a note of another origin: the verifier expects this log's origin."""
    body = f"example.com/other-log\n42\n{base64.b64encode(ROOT).decode()}\n"
    forged = KEY._private_key.sign(body.encode())
    line = signature_line(
        "example.com/other-log", note_key_id("example.com/other-log", KEY.public_key), forged
    )
    parsed = TreeCheckpoint.parse(body + "\n" + line)
    assert parsed.signed_by("example.com/other-log", KEY.public_key)
    assert not parsed.verify(KEY.public_key)


GOOD = KEY.sign_tree(42, ROOT).note


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        GOOD.rstrip("\n"),  # no final newline
        GOOD.replace("\n\n", "\n"),  # no blank line before the signatures
        GOOD.split("\n\n")[0] + "\n\n",  # no signature
        GOOD.replace("\n42\n", "\n042\n"),
        GOOD.replace("\n42\n", "\n-42\n"),
        GOOD.replace("\n42\n", "\n4 2\n"),
        GOOD.replace("\n42\n", "\n" + "9" * 30 + "\n"),
        GOOD.replace(base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[:31]).decode()),
        GOOD.replace(base64.b64encode(ROOT).decode(), "not base64!"),
        GOOD.replace("\u2014 ", "- "),  # a hyphen, not an em dash
        GOOD.replace("\u2014 ", "\u2014  "),
        GOOD + "\u2014 name\n",
        GOOD + "\u2014 name AAAA\n",  # shorter than a key ID and a signature
        GOOD.replace("42", "42\x00"),
        f"{KEY.origin}\n42\n\n{GOOD.split(chr(10) * 2)[1]}",  # no root line
        GOOD + "x" * 70_000,
    ],
)
def test_malformed_notes_are_refused_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        TreeCheckpoint.parse(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_either_parses_or_raises_value_error(text: str) -> None:
    try:
        parsed = TreeCheckpoint.parse(text)
    except ValueError:
        return
    assert not parsed.verify(KEY.public_key)  # nothing random is signed by our key


@settings(max_examples=100, deadline=None)
@given(position=st.integers(0, len(GOOD) - 2), replacement=st.characters())
def test_any_one_character_changed_either_fails_to_parse_or_to_verify(
    position: int, replacement: str
) -> None:
    changed = GOOD[:position] + replacement + GOOD[position + 1 :]
    if changed == GOOD:
        return
    try:
        parsed = TreeCheckpoint.parse(changed)
    except ValueError:
        return
    assert not parsed.verify(KEY.public_key)
